package lab

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{Prefix: "ab-"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{
		netip.MustParseAddr("192.168.94.100"), netip.MustParseAddr("fd94::100"),
		netip.MustParseAddr("192.168.94.110"), netip.MustParseAddr("fd94::110"),
	}
	if !slices.Equal(o.VIPs, want) {
		t.Errorf("default VIPs %v, want %v", o.VIPs, want)
	}
	if o.Clients != 100 || o.LoadBalancers != 1 || len(o.Servers) != 4 {
		t.Errorf("defaults: %d clients, %d lbs, %d servers", o.Clients, o.LoadBalancers, len(o.Servers))
	}
	for _, tt := range []struct {
		p    netip.Prefix
		h    int
		want string
	}{
		{o.Subnet4, 105, "192.168.94.105"}, {o.Subnet6, 105, "fd94::105"}, {o.Subnet6, 2, "fd94::2"},
		{netip.MustParsePrefix("10.0.0.0/16"), 300, "10.0.1.44"},
	} {
		if got := hostAddr(tt.p, tt.h).String(); got != tt.want {
			t.Errorf("hostAddr(%v, %d) = %s, want %s", tt.p, tt.h, got, tt.want)
		}
	}
	if got := nthAddr(netip.MustParsePrefix("255.255.255.0/24"), 256); got.IsValid() {
		t.Errorf("nthAddr overflow = %v, want invalid", got)
	}
}

func TestOptionsErrors(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"empty prefix", Options{}, "check lab prefix"},
		{"no dash", Options{Prefix: "abc"}, "check lab prefix"},
		{"too long", Options{Prefix: "abcdefghij-"}, "check lab prefix"},
		{"bad char", Options{Prefix: "a/b-"}, "check lab prefix"},
		{"no family", Options{Prefix: "ab-", NoIPv4: true, NoIPv6: true}, "no address family"},
		{"3 lbs", Options{Prefix: "ab-", LoadBalancers: 3}, "3 load balancers"},
		{"too many clients", Options{Prefix: "ab-", Clients: 255}, "too small"},
		{"server on VIP", Options{Prefix: "ab-", Servers: []ServerSpec{{"X", 100}}}, "a VIP's"},
		{"server on lb", Options{Prefix: "ab-", Servers: []ServerSpec{{"X", 3}}}, "out of 4..254"},
		{"reserved name", Options{Prefix: "ab-", Servers: []ServerSpec{{"client", 50}}}, "reserved"},
		{"repeated name", Options{Prefix: "ab-", Servers: []ServerSpec{{"A", 50}, {"A", 51}}}, "repeated"},
		{"overlap", Options{Prefix: "ab-", ClientSubnet4: netip.MustParsePrefix("192.168.94.128/25")}, "overlaps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.o.withDefaults()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := (Options{Prefix: "ab-", Clients: 254, NoIPv6: true}).withDefaults(); err != nil {
		t.Errorf("254 clients: %v", err)
	}
}

func TestPrefix(t *testing.T) {
	p := Prefix("ltx")
	if len(p) > MaxPrefixLen || !prefixRE.MatchString(p) || pidPrefixRE.FindString(p) != p {
		t.Errorf("Prefix(ltx) = %q: not a valid, parsable prefix", p)
	}
}

// vossimBin returns the vossim binary: $MEDIALB_BIN/vossim (make test), else a fresh build.
func vossimBin(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("MEDIALB_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "vossim")); err == nil {
			return filepath.Join(d, "vossim")
		}
	}
	bin := filepath.Join(t.TempDir(), "vossim")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/medialb/medialb/cmd/vossim").CombinedOutput(); err != nil {
		t.Fatalf("build vossim: %v\n%s", err, out)
	}
	return bin
}

func rootIfNames(t *testing.T) []string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	slices.Sort(names)
	return names
}

func nsNames(t *testing.T, prefix string) []string {
	t.Helper()
	names, err := listNS()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// ask sends line over c and returns the one-line answer.
func ask(t *testing.T, c net.Conn, line string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, line); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read answer from %v: %v", c.RemoteAddr(), err)
	}
	return got
}

func TestLab(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("lab: needs root to create network namespaces")
	}
	bin := vossimBin(t)
	before := rootIfNames(t)
	l := NewForTest(t, Options{Prefix: Prefix("lt"), Clients: 120})
	if after := rootIfNames(t); !slices.Equal(before, after) {
		t.Errorf("root namespace interfaces changed: %v -> %v", before, after)
	}
	if len(l.Client.Sources4) != 120 || len(l.Client.Sources6) != 120 || l.Client.Sources6[99].String() != "fd95::64" {
		t.Fatalf("client sources: %d v4, %d v6", len(l.Client.Sources4), len(l.Client.Sources6))
	}
	if err := l.StartVOS(bin); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("ClientReachesServers", func(t *testing.T) {
		for i, s := range l.Servers {
			for _, pair := range [][2]netip.Addr{{l.Client.Sources4[10+i], s.Addr4}, {l.Client.Sources6[10+i], s.Addr6}} {
				c, err := l.DialTCP(ctx, pair[0], netip.AddrPortFrom(pair[1], 1935))
				if err != nil {
					t.Fatal(err)
				}
				want := "server=" + s.Name + " client=" + c.LocalAddr().String() + "\n"
				if got := ask(t, c, "hello\n"); got != want {
					t.Errorf("%s via %v: %q, want %q", s.Name, pair[1], got, want)
				}
				c.Close()
			}
		}
	})

	t.Run("Settings", func(t *testing.T) {
		out, err := Exec(l.Client.NS, "ethtool", "-k", l.Client.Link).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "tx-checksumming: off") {
			t.Errorf("client tx checksumming not off: %v %s", err, out)
		}
		s := l.Servers[0]
		for _, key := range []string{"all/arp_ignore", s.Link + "/arp_ignore", "all/arp_announce", s.Link + "/arp_announce"} {
			var b []byte
			if err := Do(s.NS, func() (err error) { b, err = os.ReadFile("/proc/sys/net/ipv4/conf/" + key); return }); err != nil {
				t.Fatal(err)
			}
			want := "1"
			if strings.HasSuffix(key, "announce") {
				want = "2"
			}
			if strings.TrimSpace(string(b)) != want {
				t.Errorf("%s %s = %q, want %s", s.NS, key, b, want)
			}
		}
		out, err = Exec(l.Switch, "bridge", "fdb", "show", "br", l.Bridge).CombinedOutput()
		if err != nil {
			t.Fatal(err, string(out))
		}
		for _, n := range append(slices.Clone(l.Servers), l.LBs...) {
			if want := n.MAC.String() + " dev " + n.SwitchPort + " master " + l.Bridge + " static"; !strings.Contains(string(out), want) {
				t.Errorf("bridge fdb lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("VIPOnlyByL2", func(t *testing.T) {
		vip4, vip6 := l.VIPs[2], l.VIPs[3] // 192.168.94.110, fd94::110
		// ARP for a real server's own address is answered, for the VIP on its lo not.
		if n := arping(t, l, l.Servers[0].Addr4); n == 0 {
			t.Errorf("arping %v (a real server's own address): no answer", l.Servers[0].Addr4)
		}
		if n := arping(t, l, vip4); n != 0 {
			t.Errorf("arping %v (VIP on the real servers' lo): %d answers, want none", vip4, n)
		}
		// Neighbour solicitation for the VIP6 stays unanswered too.
		u, err := l.ListenUDP(netip.AddrPortFrom(l.Client.Sources6[0], 0))
		if err != nil {
			t.Fatal(err)
		}
		u.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(vip6, 554))
		u.Close()
		time.Sleep(1500 * time.Millisecond)
		cns, err := netns.GetFromName(l.Client.NS)
		if err != nil {
			t.Fatal(err)
		}
		defer cns.Close()
		h, err := netlink.NewHandleAt(cns)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		neighs, err := h.NeighList(0, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range neighs {
			if (n.IP.Equal(vip4.AsSlice()) || n.IP.Equal(vip6.AsSlice())) && n.HardwareAddr != nil && n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE) != 0 {
				t.Errorf("client resolved VIP %v to %v: a real server answered", n.IP, n.HardwareAddr)
			}
		}

		// Asked by L2 (the client's neighbour entry for the VIP points at one server's MAC,
		// as the load balancer's MAC rewrite does), each real server answers on the VIP,
		// and UDP replies come from the VIP.
		link, err := h.LinkByName(l.Client.Link)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range l.Servers {
			for j, vip := range []netip.Addr{vip4, vip6} {
				src := l.Client.Sources4[50+i]
				if vip.Is6() {
					src = l.Client.Sources6[50+i]
				}
				ne := &netlink.Neigh{LinkIndex: link.Attrs().Index, IP: vip.AsSlice(), HardwareAddr: s.MAC, State: netlink.NUD_PERMANENT}
				if err := h.NeighSet(ne); err != nil {
					t.Fatal(err)
				}
				c, err := l.DialTCP(ctx, src, netip.AddrPortFrom(vip, 554))
				if err != nil {
					t.Fatalf("%s on VIP %v: %v", s.Name, vip, err)
				}
				want := "server=" + s.Name + " client=" + c.LocalAddr().String() + "\n"
				if got := ask(t, c, "x\n"); got != want {
					t.Errorf("VIP %v via %s: %q, want %q", vip, s.Name, got, want)
				}
				c.Close()
				u, err := l.ListenUDP(netip.AddrPortFrom(src, 0))
				if err != nil {
					t.Fatal(err)
				}
				u.SetDeadline(time.Now().Add(3 * time.Second))
				dst := netip.AddrPortFrom(vip, l.MediaPorts[j])
				if _, err := u.WriteToUDPAddrPort([]byte("ping"), dst); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 256)
				n, from, err := u.ReadFromUDPAddrPort(buf)
				u.Close()
				if err != nil {
					t.Fatalf("UDP to %v via %s: %v", dst, s.Name, err)
				}
				if from.Addr().Unmap() != vip || from.Port() != dst.Port() {
					t.Errorf("UDP reply via %s from %v, want %v", s.Name, from, dst)
				}
				if want := "server=" + s.Name + " client=" + netip.AddrPortFrom(src, u.LocalAddr().(*net.UDPAddr).AddrPort().Port()).String() + "\n"; string(buf[:n]) != want {
					t.Errorf("UDP reply %q, want %q", buf[:n], want)
				}
				if err := h.NeighDel(ne); err != nil {
					t.Fatal(err)
				}
			}
		}
	})

	t.Run("VOSSwitchable", func(t *testing.T) {
		s := l.Servers[1]
		src := l.Client.Sources4[7]
		hc := l.HTTPClient(src)
		get := func(url string) string {
			t.Helper()
			resp, err := hc.Get(url)
			if err != nil {
				t.Fatalf("GET %s: %v", url, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b)
		}
		status := "https://" + netip.AddrPortFrom(s.Addr4, 8443).String() + "/admin/status"
		if got := get(status); got != "Healthy\n" {
			t.Errorf("status %q, want Healthy", got)
		}
		if err := l.SetStatus(s.Name, Unhealthy); err != nil {
			t.Fatal(err)
		}
		if got := get(status); got != "Unhealthy\n" {
			t.Errorf("status %q, want Unhealthy", got)
		}
		if err := l.SetStatus(s.Name, "bogus"); err == nil {
			t.Error("SetStatus bogus: no error")
		}
		resp, err := l.HTTPClient(l.Client.Sources6[7]).Get("http://" + netip.AddrPortFrom(s.Addr6, 8080).String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := string(b); !strings.HasPrefix(got, "server="+s.Name+" client=[fd95::8]:") {
			t.Errorf("http over v6 from client: %q", got)
		}
		st, err := l.Stats(s.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Ports["https/8443"][src.String()].Packets; got != 2 || st.Mode != Unhealthy || st.Server != s.Name {
			t.Errorf("stats: %d https requests from %v (want 2), mode %q, server %q", got, src, st.Mode, st.Server)
		}
		if err := l.ResetStats(s.Name); err != nil {
			t.Fatal(err)
		}
		if st, err := l.Stats(s.Name); err != nil || len(st.Ports) != 0 {
			t.Errorf("after reset: %+v %v", st.Ports, err)
		}
	})
}

// arping sends two ARP requests for addr from the client and returns how many answers came.
// (Its exit status is not used: iputils arping reports 1 with -w even after answers.)
func arping(t *testing.T, l *Lab, addr netip.Addr) int {
	t.Helper()
	out, _ := Exec(l.Client.NS, "arping", "-c", "2", "-w", "2", "-I", l.Client.Link, addr.String()).CombinedOutput()
	m := regexp.MustCompile(`Received (\d+) response`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("arping %v: unexpected output (is iputils-arping installed?):\n%s", addr, out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func TestTeardownAndLeftovers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("lab: needs root to create network namespaces")
	}
	prefix := Prefix("lu")
	opts := Options{Prefix: prefix, Clients: 3, Servers: DefaultServers(1), NoIPv6: true}
	t.Cleanup(func() { Cleanup(prefix) }) //nolint:errcheck // safety net

	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := nsNames(t, prefix); len(got) != 4 {
		t.Errorf("namespaces %v, want switch, client, lb1, HM1", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := nsNames(t, prefix); len(got) != 0 {
		t.Errorf("after Close: namespaces %v left", got)
	}

	// A lab left behind, with a process in it, as after a crash.
	if _, err := New(opts); err != nil {
		t.Fatal(err)
	}
	sleeper := Exec(prefix+"HM1", "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	// `ip netns exec` enters the namespace a moment after it starts; a crash leaves
	// processes that are inside, so wait until this one is.
	inside := false
	for deadline := time.Now().Add(3 * time.Second); !inside && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		out, _ := exec.Command("ip", "netns", "pids", prefix+"HM1").Output()
		inside = slices.Contains(strings.Fields(string(out)), strconv.Itoa(sleeper.Process.Pid))
	}
	if !inside {
		t.Fatal("the sleeper never entered the leftover namespace")
	}
	l2, err := New(opts)
	if err != nil {
		t.Fatalf("New over leftovers: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(3 * time.Second):
		t.Error("process in the leftover namespace still running")
		sleeper.Process.Kill()
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if got := nsNames(t, prefix); len(got) != 0 {
		t.Errorf("after second Close: namespaces %v left", got)
	}
}
