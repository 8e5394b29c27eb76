package perf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/medialb/medialb/lab"
)

// Addressing of the harness's lab. All of it lives in namespaces the harness creates.
var (
	labNet     = netip.MustParsePrefix("10.201.0.0/16")
	clientAddr = netip.MustParseAddr("10.201.0.50")
	lbAddr     = netip.MustParseAddr("10.201.0.2")
	vipAddr    = netip.MustParseAddr("10.201.0.100")
	rsAddrs    = []netip.Addr{netip.MustParseAddr("10.201.0.11"), netip.MustParseAddr("10.201.0.12")}
	// Generated frames come from sourceBase, sourceBase+1, ... (Config.Sources of them).
	sourceBase = netip.MustParseAddr("10.201.16.1")
)

// node is one namespace of the lab with its veth (the other end is a bridge port).
type node struct {
	ns   string // namespace name
	link string // interface name inside ns
	port string // its peer, a bridge port in the switch namespace
	mac  net.HardwareAddr
}

// topo is the harness's lab: a switch namespace with a bridge, a client, a load
// balancer and the real servers, each joined to the bridge by a veth pair created in the
// switch namespace.
type topo struct {
	prefix string // namespace name prefix: "mlbpf" + pid
	short  string // interface name prefix (kernel thread names must stay unique and short)
	sw     string
	bridge string
	client node
	lb     node
	rs     []node
	queues int      // RX/TX queues of the load balancer's veth pair
	notes  []string // what did not go as planned but does not stop a run
}

// newTopo builds the lab with the load balancer's veth pair having queues queues. It
// removes leftovers of the same prefix first; on error it removes what it made.
func newTopo(queues int) (t *topo, err error) {
	pid := os.Getpid()
	short := "p" + strconv.Itoa(pid%100000)
	prefix := "mlbpf" + strconv.Itoa(pid)
	t = &topo{
		prefix: prefix,
		short:  short,
		sw:     prefix + "-sw",
		bridge: short + "br",
		client: node{ns: prefix + "-cl", link: short + "c", port: short + "sc"},
		lb:     node{ns: prefix + "-lb", link: short + "l", port: short + "sl"},
		queues: queues,
	}
	for i := range rsAddrs {
		n := strconv.Itoa(i + 1)
		t.rs = append(t.rs, node{ns: prefix + "-rs" + n, link: short + "r" + n, port: short + "s" + n})
	}
	removeStale()
	t.Close()
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	for _, ns := range t.namespaces() {
		if err := ipCmd("netns", "add", ns); err != nil {
			return nil, err
		}
		if err := ipCmd("-n", ns, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
		// IPv6 would only add router and multicast listener chatter to the counters.
		if err := nsCmd(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"); err != nil {
			return nil, err
		}
	}
	// br_netfilter (loaded on this host by others) would run every bridged frame
	// through netfilter hooks; the switch namespace has no rules to run.
	if err := nsCmd(t.sw, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0",
		"net.bridge.bridge-nf-call-ip6tables=0", "net.bridge.bridge-nf-call-arptables=0"); err != nil {
		t.notes = append(t.notes, "bridge netfilter hooks could not be switched off in the switch namespace: "+err.Error())
	}
	if err := ipCmd("-n", t.sw, "link", "add", t.bridge, "type", "bridge"); err != nil {
		return nil, err
	}
	if err := ipCmd("-n", t.sw, "link", "set", t.bridge, "up"); err != nil {
		return nil, err
	}
	if err := t.addNode(&t.client, 1, clientAddr); err != nil {
		return nil, err
	}
	if err := t.addNode(&t.lb, queues, lbAddr); err != nil {
		return nil, err
	}
	if err := ipCmd("-n", t.lb.ns, "addr", "add", vipAddr.String()+"/32", "dev", t.lb.link); err != nil {
		return nil, err
	}
	for i := range t.rs {
		n := &t.rs[i]
		if err := t.addNode(n, 1, rsAddrs[i]); err != nil {
			return nil, err
		}
		// Direct routing: the VIP on lo, never announced nor answered for by ARP.
		if err := ipCmd("-n", n.ns, "addr", "add", vipAddr.String()+"/32", "dev", "lo"); err != nil {
			return nil, err
		}
		if err := nsCmd(n.ns, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
			"net.ipv4.conf."+n.link+".arp_ignore=1", "net.ipv4.conf."+n.link+".arp_announce=2"); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// removeStale deletes the namespaces of earlier harness runs whose process is gone
// (killed before it could clean up): "mlbpf" + a pid that no longer runs.
func removeStale() {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, "mlbpf")
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + pidStr); err == nil {
			continue // still running
		}
		ipCmd("netns", "del", name) //nolint:errcheck // best effort; a later run tries again
	}
}

// addNode creates n's veth pair with queues queues, puts the bridge end in the bridge,
// addresses and raises n's end, and pins n's MAC in the bridge (a silent real server's
// MAC would otherwise age out and DR frames be flooded).
func (t *topo) addNode(n *node, queues int, addr netip.Addr) error {
	q := strconv.Itoa(queues)
	if err := ipCmd("-n", t.sw, "link", "add", n.port, "numrxqueues", q, "numtxqueues", q, "type", "veth",
		"peer", "name", n.link, "numrxqueues", q, "numtxqueues", q, "netns", n.ns); err != nil {
		return err
	}
	for _, c := range [][]string{
		{"-n", t.sw, "link", "set", n.port, "master", t.bridge},
		{"-n", t.sw, "link", "set", n.port, "up"},
		{"-n", n.ns, "addr", "add", fmt.Sprintf("%s/%d", addr, labNet.Bits()), "dev", n.link},
		{"-n", n.ns, "link", "set", n.link, "up"},
	} {
		if err := ipCmd(c...); err != nil {
			return err
		}
	}
	// Kernel-built frames from a veth carry partial checksums unless TX checksum offload
	// is off; the medialb path forwards frame bytes, not sk_buffs.
	if err := nsCmd(n.ns, "ethtool", "-K", n.link, "tx", "off"); err != nil {
		return err
	}
	if err := nsCmd(t.sw, "ethtool", "-K", n.port, "tx", "off"); err != nil {
		return err
	}
	var mac net.HardwareAddr
	if err := inNS(n.ns, func() error {
		l, err := netlink.LinkByName(n.link)
		if err != nil {
			return fmt.Errorf("look up %s: %w", n.link, err)
		}
		mac = l.Attrs().HardwareAddr
		return nil
	}); err != nil {
		return err
	}
	n.mac = mac
	return runCmd("bridge", "-n", t.sw, "fdb", "replace", mac.String(), "dev", n.port, "master", "static")
}

// setLBQueues recreates the load balancer's veth pair with queues RX and TX queues.
// Nothing may be attached to it.
func (t *topo) setLBQueues(queues int) error {
	if queues == t.queues {
		return nil
	}
	if err := ipCmd("-n", t.sw, "link", "del", t.lb.port); err != nil {
		return err
	}
	mac := t.lb.mac
	if err := t.addNode(&t.lb, queues, lbAddr); err != nil {
		return err
	}
	// Keep the load balancer's MAC: the generator's frames are addressed to it.
	if err := ipCmd("-n", t.lb.ns, "link", "set", "dev", t.lb.link, "address", mac.String()); err != nil {
		return err
	}
	if err := runCmd("bridge", "-n", t.sw, "fdb", "replace", mac.String(), "dev", t.lb.port, "master", "static"); err != nil {
		return err
	}
	t.lb.mac = mac
	if err := ipCmd("-n", t.lb.ns, "addr", "add", vipAddr.String()+"/32", "dev", t.lb.link); err != nil {
		return err
	}
	t.queues = queues
	return nil
}

func (t *topo) namespaces() []string {
	ns := []string{t.sw, t.client.ns, t.lb.ns}
	for _, n := range t.rs {
		ns = append(ns, n.ns)
	}
	return ns
}

// Close deletes the lab's namespaces (their interfaces go with them). It may be called
// more than once.
func (t *topo) Close() error {
	var errs []error
	for _, ns := range t.namespaces() {
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			continue
		}
		if err := ipCmd("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rsMACs returns the real servers' MACs.
func (t *topo) rsMACs() []net.HardwareAddr {
	var m []net.HardwareAddr
	for _, n := range t.rs {
		m = append(m, n.mac)
	}
	return m
}

func ipCmd(args ...string) error { return runCmd("ip", args...) }

func nsCmd(ns, name string, args ...string) error {
	return runCmd("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

func runCmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("run %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNS runs fn on an OS thread switched into namespace ns and switches back (lab.Do).
// Sockets, BPF links and file descriptors fn opens stay valid after it returns.
func inNS(ns string, fn func() error) error { return lab.Do(ns, fn) }

// linkDrops returns the dropped-frame counters of every interface of the lab, by
// "namespace-suffix/interface rx|tx".
func (t *topo) linkDrops() map[string]uint64 {
	m := map[string]uint64{}
	add := func(ns, ifname string) {
		h, err := netns.GetFromName(ns)
		if err != nil {
			return
		}
		defer h.Close()
		nh, err := netlink.NewHandleAt(h)
		if err != nil {
			return
		}
		defer nh.Close()
		l, err := nh.LinkByName(ifname)
		if err != nil || l.Attrs().Statistics == nil {
			return
		}
		st := l.Attrs().Statistics
		m[ifname+" rx_dropped"] = st.RxDropped
		m[ifname+" tx_dropped"] = st.TxDropped
	}
	for _, n := range append([]node{t.client, t.lb}, t.rs...) {
		add(n.ns, n.link)
		add(t.sw, n.port)
	}
	return m
}

// dropDelta formats the counters of b that grew since a.
func dropDelta(a, b map[string]uint64) string {
	var parts []string
	for k, v := range b {
		if v > a[k] {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v-a[k]))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// inNSWithSys runs fn on a throwaway thread in network namespace ns with its own
// mount namespace and a sysfs of ns on /sys (as `ip netns exec` gives a process), so
// that code reading /sys/class/net (afxdp.PrioritizeNAPI) sees ns's interfaces. The
// thread is not returned to Go's pool: it ends with the goroutine.
func inNSWithSys(ns string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread's namespaces are fn's only
		h, err := netns.GetFromName(ns)
		if err != nil {
			done <- fmt.Errorf("open namespace %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			done <- fmt.Errorf("unshare mount namespace: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			done <- fmt.Errorf("make / a slave mount: %w", err)
			return
		}
		if err := netns.Set(h); err != nil {
			done <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		if err := unix.Mount(ns, "/sys", "sysfs", 0, ""); err != nil {
			done <- fmt.Errorf("mount sysfs of %s: %w", ns, err)
			return
		}
		done <- fn()
	}()
	return <-done
}
