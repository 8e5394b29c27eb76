package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
	"github.com/medialb/medialb/lab/probe"
)

// services reads the rewritten configuration back, so the demo probes what medialb runs.
func (d *demo) services() (l4, l7 *config.Service, err error) {
	cfg, err := config.Load(d.configPath())
	if err != nil {
		return nil, nil, err
	}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		switch {
		case s.Layer == config.Layer4 && l4 == nil:
			l4 = s
		case s.Layer == config.Layer7 && l7 == nil:
			l7 = s
		}
	}
	if l4 == nil || l7 == nil {
		return nil, nil, fmt.Errorf("%s: the demo wants a layer-4 and a layer-7 service", d.example)
	}
	return l4, l7, nil
}

func (d *demo) configPath() string { return d.tmp + "/harmonic-vos.yaml" }

// l4Targets are the media flows of the layer-4 VIP: RTMP and RTSP over TCP, two
// MPEG-TS ports over UDP (vossim answers on the lab's media ports).
func (d *demo) l4Targets(s *config.Service) []probe.Target {
	var ts []probe.Target
	for _, p := range []uint16{1935, 554} {
		if s.Ports.Contains(p) {
			ts = append(ts, probe.Target{Proto: "tcp", Addr: netip.AddrPortFrom(s.Address, p)})
		}
	}
	for _, p := range []uint16{d.lab.MediaPorts[0], d.lab.MediaPorts[len(d.lab.MediaPorts)-1]} {
		if s.Ports.Contains(p) {
			ts = append(ts, probe.Target{Proto: "udp", Addr: netip.AddrPortFrom(s.Address, p)})
		}
	}
	return ts
}

// split keeps the last fifth of the client sources for "new clients" later on.
func (d *demo) split() (first, later []netip.Addr) {
	src := d.lab.Client.Sources4[:len(d.lab.Client.Sources4)-freshClients] // the rest: the feedback step's
	n := len(src) * 4 / 5
	return src[:n], src[n:]
}

func (d *demo) traffic() error {
	l4, l7, err := d.services()
	if err != nil {
		return err
	}
	first, _ := d.split()
	step(fmt.Sprintf("4. traffic: %d clients through VIP 2 %s (%s, layer-4 direct routing)", len(first), l4.Address, l4.Name))
	ts := d.l4Targets(l4)
	rs := probe.Sweep(d.ctx, d.lab, first, ts, 32)
	sum := report(rs, ts)
	if sum.Failed > 0 {
		return fmt.Errorf("%d of %d layer-4 probes failed", sum.Failed, len(rs))
	}
	if sum.SawClient != sum.Answered {
		return fmt.Errorf("direct routing must show the client's own address: %d of %d answers saw another", sum.Answered-sum.SawClient, sum.Answered)
	}
	fmt.Printf("   every real server saw the client's own address (direct routing, replies straight to the client)\n")

	lbAddr := d.lab.LBs[0].Addr4
	step(fmt.Sprintf("   and HTTP/HTTPS through VIP 1 %s (%s, layer-7 SNAT proxy)", l7.Address, l7.Name))
	ts7 := []probe.Target{
		{Proto: "http", Addr: netip.AddrPortFrom(l7.Address, 8080)},
		{Proto: "https", Addr: netip.AddrPortFrom(l7.Address, 8443)},
	}
	rs7 := probe.Sweep(d.ctx, d.lab, first[:20], ts7, 16)
	sum7 := report(rs7, ts7)
	if sum7.Failed > 0 {
		return fmt.Errorf("%d of %d layer-7 probes failed", sum7.Failed, len(rs7))
	}
	if sum7.SawOther[lbAddr] != sum7.Answered {
		return fmt.Errorf("SNAT: real servers should see the load balancer %s; saw %v", lbAddr, sum7.SawOther)
	}
	fmt.Printf("   real servers saw the load balancer's address %s (SNAT), HTTPS passed through untouched\n", lbAddr)
	return nil
}

// report prints a sweep as a table and returns its summary.
func report(rs []probe.Result, ts []probe.Target) probe.Summary {
	sum := probe.Summarize(rs)
	var names []string
	for n := range sum.PerServer {
		names = append(names, n)
	}
	sort.Strings(names)
	var tnames []string
	for _, t := range ts {
		tnames = append(tnames, t.String())
	}
	fmt.Printf("   flows: %s\n", strings.Join(tnames, "  "))
	fmt.Printf("   %-8s %8s %8s\n", "server", "clients", "answers")
	for _, n := range names {
		fmt.Printf("   %-8s %8d %8d\n", n, sum.ClientsOf[n], sum.PerServer[n])
	}
	fmt.Printf("   answered %d/%d; clients kept on one server for every flow: %d/%d\n",
		sum.Answered, len(rs), sum.Sticky, sum.Sticky+len(sum.Split))
	for t, es := range sum.Errors {
		fmt.Printf("   errors on %s: %s\n", t, strings.Join(es, "; "))
	}
	return sum
}

// serverOf maps each source to the server that answered it.
func serverOf(rs []probe.Result) map[netip.Addr]string {
	m := map[netip.Addr]string{}
	for _, r := range rs {
		if r.Err == nil {
			m[r.Src] = r.Reply.Server
		}
	}
	return m
}

func (d *demo) failover() error {
	l4, _, err := d.services()
	if err != nil {
		return err
	}
	first, later := d.split()
	ts := d.l4Targets(l4)
	victim := l4.RealServers[0].Name
	hc := l4.HealthCheck
	step(fmt.Sprintf("5. failure: %s's /admin/status answers Unhealthy (check every %s, fall %d, rise %d)", victim, hc.Interval, hc.Fall, hc.Rise))
	before := serverOf(probe.Sweep(d.ctx, d.lab, first, ts[:1], 32))
	mark := d.medialb.Mark()
	t0 := time.Now()
	if err := d.lab.SetStatus(victim, lab.Unhealthy); err != nil {
		return err
	}
	if err := d.medialb.WaitServerState(d.ctx, mark, 5*hc.Interval*time.Duration(hc.Fall), victim, "down"); err != nil {
		return err
	}
	fmt.Printf("   %s marked down %.1fs after it turned Unhealthy (bound: interval x fall + interval = %s)\n",
		victim, time.Since(t0).Seconds(), hc.Interval*time.Duration(hc.Fall+1))
	rs := probe.Sweep(d.ctx, d.lab, first, ts, 32)
	report(rs, ts)
	after := serverOf(rs)
	moved, stayed := 0, 0
	for src, was := range before {
		if was == victim {
			if after[src] == victim {
				return fmt.Errorf("client %s still reaches %s after it went down", src, victim)
			}
			moved++
		} else if after[src] == was {
			stayed++
		}
	}
	fmt.Printf("   %d clients of %s moved (their persistence entries were dropped); %d others kept their server\n", moved, victim, stayed)

	mark = d.medialb.Mark()
	t0 = time.Now()
	if err := d.lab.SetStatus(victim, lab.Healthy); err != nil {
		return err
	}
	if err := d.medialb.WaitServerState(d.ctx, mark, 5*hc.Interval*time.Duration(hc.Rise), victim, "online"); err != nil {
		return err
	}
	fmt.Printf("   %s back online %.1fs after it recovered\n", victim, time.Since(t0).Seconds())
	again := serverOf(probe.Sweep(d.ctx, d.lab, first, ts[:1], 32))
	kept := 0
	for src, s := range after {
		if again[src] == s {
			kept++
		}
	}
	fmt.Printf("   %d/%d existing clients stay where they are (persistence: no second move)\n", kept, len(after))
	fresh := probe.Sweep(d.ctx, d.lab, later, ts, 32)
	fmt.Printf("   %d new clients:\n", len(later))
	if sum := report(fresh, ts); sum.PerServer[victim] == 0 {
		return fmt.Errorf("%s takes no new clients after it recovered", victim)
	}
	return nil
}

// reload shows SIGHUP: an invalid file is refused and the service keeps running, a
// valid one is applied.
func (d *demo) reload(cfg string) error {
	step("6. reload: SIGHUP with a broken file, then with the good one")
	good, err := os.ReadFile(cfg)
	if err != nil {
		return err
	}
	bad := strings.Replace(string(good), "layer: 4", "layer: 5", 1)
	if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
		return err
	}
	mark := d.medialb.Mark()
	d.medialb.Signal(syscall.SIGHUP)
	if _, err := d.medialb.WaitFor(d.ctx, mark, 5*time.Second, "refused reload", func(ev lbproc.Event) bool {
		return strings.HasPrefix(fmt.Sprint(ev["message"]), "reload refused")
	}); err != nil {
		return err
	}
	l4, _, err := d.servicesFrom(good)
	if err != nil {
		return err
	}
	first, _ := d.split()
	rs := probe.Sweep(d.ctx, d.lab, first[:20], d.l4Targets(l4), 16)
	if sum := probe.Summarize(rs); sum.Failed > 0 {
		return fmt.Errorf("after a refused reload %d probes failed", sum.Failed)
	}
	fmt.Println("   still serving with the running configuration")
	if err := os.WriteFile(cfg, good, 0o600); err != nil {
		return err
	}
	mark = d.medialb.Mark()
	d.medialb.Signal(syscall.SIGHUP)
	if _, err := d.medialb.WaitFor(d.ctx, mark, 5*time.Second, "reload", func(ev lbproc.Event) bool {
		return ev["message"] == "configuration reloaded"
	}); err != nil {
		return err
	}
	return nil
}

func (d *demo) servicesFrom(data []byte) (l4, l7 *config.Service, err error) {
	if err := os.WriteFile(d.configPath(), data, 0o600); err != nil {
		return nil, nil, err
	}
	return d.services()
}

// vipsLeft lists the VIPs still on the load balancer's interface.
func (d *demo) vipsLeft() string {
	out, _ := exec.Command("ip", "-n", d.lab.LBs[0].NS, "-br", "addr", "show", "dev", d.lab.LBs[0].Link).CombinedOutput()
	return strings.TrimSpace(string(out))
}
