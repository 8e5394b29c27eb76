package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/probe"
)

// freshClients is how many client sources the demo keeps for the feedback
// step: clients without a persistence entry, so that the weights decide.
const freshClients = 60

// waitServer polls the overview until ok accepts the real server.
func (d *demo) waitServer(service, server string, timeout time.Duration, what string, ok func(api.RealServer) bool) (api.RealServer, error) {
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	var last api.RealServer
	for ctx.Err() == nil {
		if ov, err := d.overview(); err == nil {
			for _, s := range ov.Services {
				for _, r := range s.RealServers {
					if s.Name == service && r.Name == server {
						if last = r; ok(r) {
							return r, nil
						}
					}
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return last, fmt.Errorf("%s/%s not %s within %s (last seen: %+v)", service, server, what, timeout, last)
}

// feedback shows the load-feedback agent moving new clients: HM1 says it is
// 90% busy, then drains itself.
func (d *demo) feedback() error {
	_, l7, err := d.services()
	if err != nil {
		return err
	}
	busy, other := l7.RealServers[0].Name, l7.RealServers[1].Name
	step(fmt.Sprintf("7. load feedback: %s's agent reports 90%% busy (feedback: { protocol: agent } on %s)", busy, l7.Name))
	fmt.Printf("   every vossim runs a feedback agent on :%d answering HAProxy agent-check words; %s's now answers \"10%%\"\n", lab.VOSAgentPort, busy)
	t0 := time.Now()
	if err := d.lab.SetAgent(busy, "10%"); err != nil {
		return err
	}
	rs, err := d.waitServer(l7.Name, busy, 10*time.Second, "at 10% of its weight", func(r api.RealServer) bool {
		return r.Feedback != nil && r.Feedback.Percent == 10
	})
	if err != nil {
		return err
	}
	fmt.Printf("   %s: weight %d of %d configured after %.1fs (agent's last answer %q)\n", busy, rs.Weight, rs.ConfiguredWeight, time.Since(t0).Seconds(), rs.Feedback.Answer)
	fresh := d.lab.Client.Sources4[len(d.lab.Client.Sources4)-freshClients:]
	ts := []probe.Target{{Proto: "http", Addr: netip.AddrPortFrom(l7.Address, 8080)}}
	sum := report(probe.Sweep(d.ctx, d.lab, fresh, ts, 16), ts)
	fmt.Printf("   %d new clients: %d to %s, %d to %s\n", len(fresh), sum.ClientsOf[busy], busy, sum.ClientsOf[other], other)
	if sum.ClientsOf[busy] >= sum.ClientsOf[other] {
		return fmt.Errorf("%s reports 90%% busy but took %d of %d new clients", busy, sum.ClientsOf[busy], len(fresh))
	}

	if err := d.lab.SetAgent(busy, "drain"); err != nil {
		return err
	}
	if rs, err = d.waitServer(l7.Name, busy, 10*time.Second, "drained by its agent", func(r api.RealServer) bool { return r.State == "drain" }); err != nil {
		return err
	}
	fmt.Printf("   agent answers \"drain\": %s state %s, operator state %s, agent %q (persistent clients stay)\n", busy, rs.State, rs.Admin, rs.Feedback.Agent)
	if err := d.lab.SetAgent(busy, "ready 100%"); err != nil {
		return err
	}
	if rs, err = d.waitServer(l7.Name, busy, 10*time.Second, "back", func(r api.RealServer) bool { return r.State == "online" && r.Weight == r.ConfiguredWeight }); err != nil {
		return err
	}
	fmt.Printf("   agent answers \"ready 100%%\": %s %s at weight %d\n", busy, rs.State, rs.Weight)
	return nil
}

// arpProblem shows the direct-routing "ARP problem" caught: a real server
// holds the VIPs on its network interface instead of lo.
func (d *demo) arpProblem() error {
	l4, _, err := d.services()
	if err != nil {
		return err
	}
	bad := l4.RealServers[len(l4.RealServers)-1].Name
	step(fmt.Sprintf("8. the ARP problem: %s holds the VIPs on its network interface instead of lo", bad))
	t0 := time.Now()
	if err := d.lab.MisplaceVIPs(bad, true); err != nil {
		return err
	}
	rs, err := d.waitServer(l4.Name, bad, 15*time.Second, "flagged", func(r api.RealServer) bool { return len(r.Problems) > 0 })
	if err != nil {
		return err
	}
	fmt.Printf("   medialb flags %s after %.1fs (overview problems, log, medialb_real_server_problems):\n     %s\n", bad, time.Since(t0).Seconds(), rs.Problems[0])
	lb := d.lab.LBs[0]
	cmd := lab.Exec(lb.NS, filepath.Join(d.bin, "medialb"), "realserver-check", "--config", d.configPath())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	fmt.Printf("   $ medialb realserver-check --config %s   (exit: %v)\n", d.configPath(), exitCode(err))
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		fmt.Println("     " + l)
	}
	setup, _ := lab.Exec(lb.NS, filepath.Join(d.bin, "medialb"), "realserver-setup", "--config", d.configPath()).Output()
	fmt.Printf("   $ medialb realserver-setup --config %s   (the fix, for %s):\n", d.configPath(), bad)
	mine := false
	for _, l := range strings.Split(strings.TrimSpace(string(setup)), "\n") {
		if strings.HasPrefix(l, "# ") && strings.Contains(l, "): real server of") {
			mine = strings.HasPrefix(l, "# "+bad+" (")
		}
		if mine && (strings.Contains(l, "ip addr") || strings.Contains(l, "sysctl -w")) {
			fmt.Println("     " + l)
		}
	}
	t0 = time.Now()
	if err := d.lab.RestoreVIPs(bad); err != nil {
		return err
	}
	if _, err := d.waitServer(l4.Name, bad, 15*time.Second, "fixed", func(r api.RealServer) bool { return len(r.Problems) == 0 }); err != nil {
		return err
	}
	fmt.Printf("   VIPs back on %s's lo: problem cleared after %.1fs\n", bad, time.Since(t0).Seconds())
	return nil
}

func exitCode(err error) string {
	if err == nil {
		return "0"
	}
	return err.Error()
}
