package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/probe"
)

// checkArgs is what `medialb-lab check` probes and expects.
type checkArgs struct {
	sources  []netip.Addr
	l7, l4   netip.Addr
	l7Ports  []uint16
	l4Ports  []uint16
	lbs      []netip.Addr // the load balancers' addresses: the client address an L7 server sees
	servers  []string     // every one must get clients on both VIPs
	api      string       // the load balancer's API, "": do not wait for health
	apiUser  string
	wait     time.Duration
	parallel int
}

func parseCheck(args []string) (checkArgs, error) {
	var c checkArgs
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	sources := fs.String("sources", "", "source addresses on this machine, FIRST/LEN-COUNT (as provision --sources)")
	l7 := fs.String("l7", "", "the layer-7 (SNAT proxy) VIP")
	l7Ports := fs.String("l7-ports", "8080,8443", "its ports: 8080 HTTP, 8443 HTTPS")
	l4 := fs.String("l4", "", "the layer-4 (direct routing) VIP")
	l4Ports := fs.String("l4-ports", "1935,554,50000,60000", "its ports, each probed by TCP and UDP")
	lbs := fs.String("lb", "", "the load balancers' own addresses, comma-separated")
	servers := fs.String("servers", "", "the real servers' names, comma-separated")
	fs.StringVar(&c.api, "api", "", "the load balancer's API (https://HOST:PORT): wait until its real servers are up before probing")
	fs.StringVar(&c.apiUser, "api-user", "loadbalancer:loadbalancer", "USER:PASSWORD for --api")
	fs.DurationVar(&c.wait, "wait", 3*time.Minute, "how long the real servers (--api) and then each VIP may take to come up")
	fs.IntVar(&c.parallel, "parallel", 8, "probes at a time")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	src, err := parseSources(*sources)
	if err != nil {
		return c, err
	}
	for _, p := range src {
		c.sources = append(c.sources, p.Addr())
	}
	if c.l7, err = netip.ParseAddr(*l7); err != nil {
		return c, fmt.Errorf("parse --l7: %w", err)
	}
	if c.l4, err = netip.ParseAddr(*l4); err != nil {
		return c, fmt.Errorf("parse --l4: %w", err)
	}
	if c.l7Ports, err = parsePortList("--l7-ports", *l7Ports); err != nil {
		return c, err
	}
	if c.l4Ports, err = parsePortList("--l4-ports", *l4Ports); err != nil {
		return c, err
	}
	for _, s := range strings.Split(*lbs, ",") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return c, fmt.Errorf("parse --lb: %w", err)
		}
		c.lbs = append(c.lbs, a)
	}
	c.servers = strings.Split(*servers, ",")
	if *servers == "" {
		return c, errors.New("check: --servers names none")
	}
	return c, nil
}

func parsePortList(flagName, s string) ([]uint16, error) {
	var out []uint16
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.ParseUint(f, 10, 16)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("parse %s %q: want comma-separated ports 1..65535", flagName, s)
		}
		out = append(out, uint16(p))
	}
	return out, nil
}

// runCheck probes both VIPs from every source and returns what went wrong.
func runCheck(ctx context.Context, c checkArgs) error {
	var l7, l4 []probe.Target
	for _, p := range c.l7Ports {
		proto := "http"
		if p == 8443 || p == 443 {
			proto = "https"
		}
		l7 = append(l7, probe.Target{Proto: proto, Addr: netip.AddrPortFrom(c.l7, p)})
	}
	for _, p := range c.l4Ports {
		for _, proto := range []string{"tcp", "udp"} {
			l4 = append(l4, probe.Target{Proto: proto, Addr: netip.AddrPortFrom(c.l4, p)})
		}
	}
	if c.api != "" {
		if err := waitHealthy(ctx, c.api, c.apiUser, c.wait); err != nil {
			return err
		}
	}
	var problems []string
	for _, v := range []struct {
		name    string
		targets []probe.Target
		snat    bool
	}{{"layer 7 (SNAT proxy)", l7, true}, {"layer 4 (direct routing)", l4, false}} {
		if err := waitFirst(ctx, c.sources[0], v.targets[0], c.wait); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", v.name, err))
			continue
		}
		sum := probe.Summarize(probe.Sweep(ctx, lab.Local{}, c.sources, v.targets, c.parallel))
		fmt.Printf("%s: %d sources x %d targets: %d answered, %d failed, per server %v, %d sources kept one server\n",
			v.name, len(c.sources), len(v.targets), sum.Answered, sum.Failed, sum.PerServer, sum.Sticky)
		for _, p := range verify(sum, len(c.sources), len(v.targets), v.snat, c.lbs, c.servers) {
			problems = append(problems, v.name+": "+p)
		}
	}
	if len(problems) > 0 {
		return errors.New("check failed:\n  " + strings.Join(problems, "\n  "))
	}
	return nil
}

// waitFirst probes t from src until it answers or wait has passed: the load balancer
// brings its VIPs up after its health checks pass.
func waitFirst(ctx context.Context, src netip.Addr, t probe.Target, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		_, err := probe.One(ctx, lab.Local{}, src, t)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer from %s within %s: %w", t, wait, err)
		}
		time.Sleep(2 * time.Second)
	}
}

// verify lists what a sweep of sources x targets got wrong: every probe answered, every
// source kept one server on every port and protocol (source-IP persistence), every
// server got clients, and the client address the servers saw: the source itself (direct
// routing keeps it) or, behind the SNAT proxy, one of the load balancers' addresses.
func verify(s probe.Summary, sources, targets int, snat bool, lbs []netip.Addr, servers []string) []string {
	var out []string
	if s.Failed > 0 {
		out = append(out, fmt.Sprintf("%d of %d probes failed: %v", s.Failed, sources*targets, s.Errors))
	}
	if len(s.Split) > 0 {
		out = append(out, fmt.Sprintf("%d sources answered by more than one server (no persistence): %v", len(s.Split), s.Split))
	}
	for _, name := range servers {
		if s.ClientsOf[name] == 0 {
			out = append(out, fmt.Sprintf("server %s got no clients (per server: %v)", name, s.PerServer))
		}
	}
	for name := range s.PerServer {
		if !slices.Contains(servers, name) {
			out = append(out, fmt.Sprintf("answer from unexpected server %s", name))
		}
	}
	if snat {
		for a := range s.SawOther {
			if !slices.Contains(lbs, a) {
				out = append(out, fmt.Sprintf("a server saw client %s, not a load balancer's address %v", a, lbs))
			}
		}
		if s.SawClient > 0 {
			out = append(out, fmt.Sprintf("%d answers saw the client's own address through the SNAT proxy", s.SawClient))
		}
	} else if s.SawClient != s.Answered {
		out = append(out, fmt.Sprintf("client address lost: %d of %d answers saw another address %v", s.Answered-s.SawClient, s.Answered, s.SawOther))
	}
	return out
}
