package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/ecmp"
)

// TestBGPECMP runs two medialb nodes, then a third, behind an FRR router that
// spreads the clients over them with ECMP, and checks from the clients' side:
// every node takes clients; a drained node leaves the router's route at once and
// no established TCP connection breaks, every flow keeps its real server; a node
// added takes clients without breaking any; a node killed with SIGKILL leaves
// the route and its clients go on on the same real servers.
func TestBGPECMP(t *testing.T) {
	e := newEnv(t, "bgp", lab.Options{NoIPv6: true, LoadBalancers: 2, Clients: 40})
	c, err := ecmp.New(e.lab, e.bin, e.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("stop nodes: %v", err)
		}
		if t.Failed() {
			for _, n := range c.Nodes {
				if n.Proc != nil {
					t.Logf("%s log:\n%s", n.Name, n.Proc.Log())
				}
			}
			out, _ := c.Router.VTY("show bgp summary")
			t.Logf("router:\n%s", out)
		}
	})
	ctx := context.Background()
	lb1, lb2 := c.Nodes[0], c.Nodes[1]
	for _, n := range c.Nodes {
		if err := c.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitAnnounced(ctx, 30*time.Second, lb1, lb2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitPaths(ctx, 10*time.Second, lb1, lb2); err != nil {
		t.Fatal(err)
	}
	srcs := e.lab.Client.Sources4
	spread := func() map[string]int {
		t.Helper()
		on, err := c.NodeOf(srcs)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, name := range on {
			n[name]++
		}
		return n
	}
	if s := spread(); s["lb1"] == 0 || s["lb2"] == 0 {
		t.Fatalf("clients per node %v: the router does not spread them over both", s)
	}
	// Every real server halted on lb1 alone (before the flows: a halt breaks the
	// connections of the halted server): lb1 has nothing to offer and withdraws.
	for _, rs := range e.lab.Servers {
		if _, err := c.API(ctx, lb1, "POST", "/api/v1/services/Harmonic_Traffic/real-servers/"+rs.Name+"/halt"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WaitPaths(ctx, 5*time.Second, lb2); err != nil {
		t.Fatalf("all of lb1's servers halted: %v", err)
	}
	for _, rs := range e.lab.Servers {
		if _, err := c.API(ctx, lb1, "POST", "/api/v1/services/Harmonic_Traffic/real-servers/"+rs.Name+"/online"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WaitPaths(ctx, 5*time.Second, lb1, lb2); err != nil {
		t.Fatal(err)
	}

	flows, err := ecmp.Open(ctx, e.lab, srcs)
	if err != nil {
		t.Fatal(err)
	}
	defer flows.Close()
	// Both nodes see clients (their persistence tables hold them).
	for _, n := range []*ecmp.Node{lb1, lb2} {
		ov, err := c.Overview(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(ov.Services) != 1 || ov.Services[0].ActiveClients == 0 {
			t.Errorf("%s: overview %+v: no clients through this node", n.Name, ov.Services)
		}
	}

	// Drain lb1: the router stops using it, nothing breaks.
	if _, err := c.API(ctx, lb1, "POST", "/api/v1/node/drain"); err != nil {
		t.Fatal(err)
	}
	took, err := c.WaitPaths(ctx, 5*time.Second, lb2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("drain: the router stopped using lb1 after %v", took)
	if ov, _ := c.Overview(ctx, lb1); ov.BGP == nil || ov.BGP.State != "drain" || len(ov.BGP.Announced) != 0 {
		t.Errorf("lb1 overview after drain: %+v, want state drain and nothing announced", ov.BGP)
	}
	time.Sleep(time.Second)
	if err := flows.Broken(); err != nil {
		t.Fatalf("a connection broke on drain: %v", err)
	}
	if k := flows.Counts(); k.TCPMoved+k.UDPMoved > 0 {
		t.Errorf("after drain: %+v: flows answered by another real server", k)
	}
	if _, err := c.API(ctx, lb1, "POST", "/api/v1/node/online"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitPaths(ctx, 5*time.Second, lb1, lb2); err != nil {
		t.Fatal(err)
	}

	// A third node: clients move to it, none breaks, none changes server.
	lb3, err := c.AddNode(4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitPaths(ctx, 20*time.Second, lb1, lb2, lb3); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if s := spread(); s["lb3"] == 0 {
		t.Errorf("clients per node %v: none moved to lb3", s)
	}
	if err := flows.Broken(); err != nil {
		t.Fatalf("a connection broke when lb3 joined: %v", err)
	}

	// kill -9 lb3: its BGP session closes with the process, the router drops it.
	lb3.Proc.Kill() // SIGKILL
	took, err = c.WaitPaths(ctx, ecmp.HoldTime+5*time.Second, lb1, lb2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kill -9: the router stopped using lb3 after %v", took)
	time.Sleep(time.Second)
	if err := flows.Broken(); err != nil {
		t.Errorf("a connection broke when lb3 was killed: %v", err)
	}

	// SIGTERM on lb2: it withdraws before its dataplane goes; its clients go on through lb1.
	if err := lb2.Proc.Stop(15 * time.Second); err != nil {
		t.Errorf("lb2 exit: %v", err)
	}
	if paths, err := c.Paths(); err != nil || len(paths) != 1 || paths[0] != lb1.Addr4 {
		t.Errorf("router's paths after lb2's SIGTERM: %v %v, want lb1 only", paths, err)
	}
	time.Sleep(time.Second)
	if err := flows.Broken(); err != nil {
		t.Errorf("a connection broke when lb2 stopped: %v", err)
	}
	k := flows.Counts()
	if k.TCPMoved+k.UDPMoved > 0 {
		t.Errorf("flows %+v: some were answered by another real server", k)
	}
	t.Logf("flows: %+v", k)
}
