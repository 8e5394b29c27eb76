package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/probe"
	"github.com/medialb/medialb/perf/xdpref"
)

// tunnelConfig: one layer-4 service with HT1 on the segment (direct routing) and FAR
// behind the lab's router (forwarding: tunnel, encapsulation given by the template).
const tunnelConfig = nodeSection + "%s" + apiSection + `
virtual_services:
  - name: Harmonic_Traffic
    address: 192.168.94.110
    ports: "1935,554,50000-65535"
    layer: 4
    protocol: tcp+udp
    persistence: { mode: source-ip, timeout: 300s }
    health_check: ` + tcpCheck + `
    tunnel: %s
    real_servers:
      - { name: HT1, address: 192.168.94.115 }
      - { name: FAR, address: 10.94.1.5, forwarding: tunnel }
`

// setupFar runs, in the far server's namespace, what `medialb realserver-setup --tunnel`
// prints for it. This kernel has neither ipip nor fou (CONFIG_NET_IPIP, CONFIG_NET_FOU
// off): lab.Decap stands in for the device (and fou port) those lines would create, as a
// TUN device of the same name; every other line (the VIPs on it, rp_filter) runs as
// printed.
func setupFar(t *testing.T, e *env, far lab.Node) *lab.Decap {
	t.Helper()
	out, err := exec.Command(filepath.Join(e.bin, "medialb"), "realserver-setup", "--config", e.cfg, "--tunnel").CombinedOutput()
	if err != nil {
		t.Fatalf("realserver-setup --tunnel: %v\n%s", err, out)
	}
	var dev string
	var cmds [][]string
	guePort := uint16(0)
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "#") || f[0] == "modprobe":
		case len(f) > 4 && f[0] == "ip" && f[1] == "link" && f[2] == "add":
			dev = f[4] // ip link add name DEV type ipip external
		case len(f) > 4 && f[0] == "ip" && f[1] == "fou":
			var p int
			for _, c := range f[4] {
				p = p*10 + int(c-'0')
			}
			guePort = uint16(p)
		default:
			cmds = append(cmds, f)
		}
	}
	if dev == "" || len(cmds) == 0 {
		t.Fatalf("realserver-setup --tunnel printed no tunnel device:\n%s", out)
	}
	d, err := lab.StartDecap(far.NS, dev, guePort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for _, c := range cmds {
		if out, err := lab.Exec(far.NS, c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s in %s: %v\n%s", strings.Join(c, " "), far.NS, err, out)
		}
	}
	return d
}

// serverStates returns the overview's state and health of each real server.
func serverStates(t *testing.T, e *env) map[string]string {
	t.Helper()
	code, body, err := e.proc.API(context.Background(), "GET", "9443", "/api/v1/overview", "loadbalancer", "loadbalancer")
	if err != nil || code != 200 {
		t.Fatalf("overview: %d %v", code, err)
	}
	var ov struct {
		Services []struct {
			RealServers []struct{ Name, State, Health string } `json:"real_servers"`
		}
	}
	if err := json.Unmarshal(body, &ov); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range ov.Services {
		for _, r := range s.RealServers {
			out[r.Name] = r.State + "/" + r.Health
		}
	}
	return out
}

// TestL4Tunnel: one service, one real server on the segment (direct routing) and one
// two hops away behind a router (tunnel): health checks reach both, both receive
// clients' TCP and UDP with the client's address and answer the client directly (the
// far one through the router), the outer source is the load balancer's address, and a
// full-size TCP segment makes the load balancer send ICMP frag-needed, after which
// the client's smaller segments get through.
func TestL4Tunnel(t *testing.T) {
	for _, encap := range []string{"ipip", "gue"} {
		t.Run(encap, func(t *testing.T) { testL4Tunnel(t, encap, false) })
	}
	// The XDP fast path encapsulates decided clients' frames itself.
	for _, encap := range []string{"ipip", "gue"} {
		t.Run(encap+"-fastpath", func(t *testing.T) { testL4Tunnel(t, encap, true) })
	}
}

func testL4Tunnel(t *testing.T, encap string, fastPath bool) {
	tag := map[string]string{"ipip": "tui", "gue": "tug"}[encap]
	node := ""
	if fastPath {
		tag, node = map[string]string{"ipip": "tuf", "gue": "tuh"}[encap], "  xdp_fastpath: \"on\"\n"
	}
	e := newEnv(t, tag, lab.Options{Clients: 40})
	if fastPath {
		// On veth, XDP_TX frames reach the bridge only if its port has an XDP program.
		var pass *xdpref.Attachment
		if err := lab.Do(e.lab.Switch, func() (err error) { pass, err = xdpref.AttachPass(e.lab.LBs[0].SwitchPort); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pass.Close() })
	}
	r, err := e.lab.AddRoutedServer("FAR")
	if err != nil {
		t.Fatal(err)
	}
	e.start(fmt.Sprintf(tunnelConfig, node, encap))
	decap := setupFar(t, e, r.Server)
	// vossim after the setup: it binds its UDP sockets to the VIP now on the tunnel.
	if err := e.lab.StartVOS(filepath.Join(e.bin, "vossim")); err != nil {
		t.Fatal(err)
	}
	e.waitChecked(15 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	st := serverStates(t, e)
	for (st["HT1"] != "online/up" || st["FAR"] != "online/up") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		st = serverStates(t, e)
	}
	if st["HT1"] != "online/up" || st["FAR"] != "online/up" {
		t.Fatalf("real servers %v, want both online/up (health checks reach both)", st)
	}

	ctx := context.Background()
	vip := netip.MustParseAddr("192.168.94.110")
	udp := []uint16{e.lab.MediaPorts[0]}
	rs := probe.Sweep(ctx, e.lab, e.lab.Client.Sources4, l4Targets(vip, udp), 16)
	checkDR(t, encap, rs, map[string]float64{"HT1": 0.5, "FAR": 0.5})
	var farSrc netip.Addr
	farProto := map[string]int{}
	for _, x := range rs {
		if x.Err == nil && x.Reply.Server == "FAR" {
			farProto[x.Target.Proto]++
			farSrc = x.Src
		}
	}
	if farProto["tcp"] == 0 || farProto["udp"] == 0 {
		t.Fatalf("FAR answered %v: want TCP and UDP", farProto)
	}
	n := decap.IPIP.Load() + decap.GUE.Load()
	if n == 0 || (encap == "gue") != (decap.GUE.Load() > 0) {
		t.Errorf("decapsulated %d IPIP and %d GUE packets with tunnel: %s", decap.IPIP.Load(), decap.GUE.Load(), encap)
	}
	if got, want := decap.OuterSources(), e.lab.LBs[0].Addr4.String(); got != want {
		t.Errorf("outer sources %q, want the load balancer's address %s", got, want)
	}
	enc := metricLabel(t, e, "medialb_dataplane_tunnel_packets_total", `what="encapsulated"`)
	fast := metricLabel(t, e, "medialb_dataplane_tunnel_packets_total", `what="fastpath_encapsulated"`)
	if enc+fast == 0 || (fastPath && fast == 0) {
		t.Errorf("encapsulated frames: %.0f by the pipeline, %.0f by the fast path (on: %v)", enc, fast, fastPath)
	}
	if far := metricLabel(t, e, "medialb_real_server_packets_total", `server="FAR"`); far < enc+fast {
		t.Errorf("FAR's packet counter %.0f, below the %.0f frames encapsulated to it", far, enc+fast)
	}
	t.Logf("%s (fast path %v): encapsulated %.0f by the pipeline, %.0f by the fast path", encap, fastPath, enc, fast)

	// Full-size frames: the client's 1500-byte TCP segments do not fit the tunnel
	// (MTU 1500 on the way); the load balancer answers ICMP frag-needed (MTU 1480), the
	// client's kernel lowers its path MTU and resends, and the long line arrives.
	c, err := e.lab.DialTCP(ctx, farSrc, netip.AddrPortFrom(vip, 1935))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line := strings.Repeat("x", 20000) + "\n"
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(line)); err != nil {
		t.Fatalf("write a 20000-byte line: %v", err)
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(reply, "server=FAR") || !strings.Contains(reply, farSrc.String()) {
		t.Fatalf("reply to a full-size stream %q, %v: want FAR seeing %s", reply, err, farSrc)
	}
	if sent := metricLabel(t, e, "medialb_dataplane_tunnel_packets_total", `what="icmp_too_big_sent"`); sent == 0 {
		t.Errorf("no ICMP too-big sent for full-size segments")
	}
	// UDP with DF: the first full-size datagram is answered with frag-needed, the
	// client's kernel learns MTU 1480 and refuses the next one (EMSGSIZE).
	u, err := e.lab.DialUDP(farSrc, netip.AddrPortFrom(vip, e.lab.MediaPorts[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	raw, _ := u.SyscallConn()
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER, syscall.IP_PMTUDISC_DO)
	})
	big := make([]byte, 1472) // a 1500-byte IP packet
	var mtuErr error
	for range 20 {
		if _, mtuErr = u.Write(big); mtuErr != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(mtuErr, syscall.EMSGSIZE) {
		t.Errorf("the client's kernel never lowered its path MTU for the VIP (last write: %v)", mtuErr)
	}
	t.Logf("%s: decapsulated IPIP %d GUE %d, ICMP too-big sent %.0f", encap, decap.IPIP.Load(), decap.GUE.Load(),
		metricLabel(t, e, "medialb_dataplane_tunnel_packets_total", `what="icmp_too_big_sent"`))
}
