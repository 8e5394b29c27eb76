// Package vm is the QEMU back end of the lab: the namespace lab's topology (lab.Topology:
// a client, a load balancer, real servers) as TCG guests with virtio-net NICs on tap
// devices in a bridge inside a network namespace the lab creates (nothing in the root
// namespace). The guests boot the pinned Debian kernel (FetchKernel) with an initramfs of
// our static binaries (BuildInitramfs) whose init, medialb-vmagent, provisions the guest
// with lab.Provision and runs what the host asks over HTTP (Guest.Run, Start, Probe).
//
// The load balancer gets the real-driver setup AF_XDP needs: several vCPUs, a multi-queue
// virtio-net (tap multi_queue, one queue pair per vCPU), iommu_platform=on (without it
// virtio-net refuses a zero-copy bind with EINVAL) and vhost off. No rss=on: QEMU 7.2's
// eBPF RSS does not load with libbpf 1.x ("legacy map definitions"), so QEMU steers in
// software, and a frame its RSS sends to a virtqueue with no free buffers is parked on the
// tap queue it came from, which QEMU then never reads again (it flushes only the queue the
// guest refilled): after a burst (the malformed-frame barrage, a probe sweep) every flow the
// tap hashes to that queue was lost until medialb re-attached XDP. Without RSS each tap
// queue feeds its own virtqueue. With no spare queue pairs virtio-net's XDP_TX runs in its
// locked mode (slower, correct) and adds no RX queues, so medialb needs no RSS table. It needs root, the `ip` command and qemu-system-x86_64; TCG is slow:
// the lab checks behaviour and ratios, not speed.
package vm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/medialb/medialb/lab"
)

// Options configures a VM lab. Prefix and Bin are required.
type Options struct {
	Prefix string // lab.Prefix(tag)
	Bin    string // directory of static binaries: medialb-vmagent and Progs
	Cache  string // kernels and images; default DefaultCache
	// Topology is the namespace lab's description; default: IPv4, 20 clients, HT1 and HT2.
	Topology lab.Options
	// Progs are the programs of Bin put into /bin of every guest; default medialb, vossim.
	Progs []string
	// LBCPUs is the load balancer's vCPU count (default 2); its NIC gets LBCPUs queues.
	LBCPUs int
	// LBQueues overrides the load balancer NIC's queue pairs (default LBCPUs; more make
	// virtio-net's XDP enable extra RX queues, and medialb a socket on each).
	LBQueues int
	// NoIOMMU leaves iommu_platform off on the load balancer's NIC (zero-copy then fails
	// with EINVAL).
	NoIOMMU bool
	// Memory per guest in MiB: load balancer (default 768) and others (default 384).
	LBMemory, Memory int
	Log              func(format string, args ...any) // default: none
}

// Guest is one QEMU guest of the lab.
type Guest struct {
	lab.Machine
	Addr    netip.Addr // primary address: the agent answers there
	MAC     net.HardwareAddr
	Tap     string
	Console string // the serial console's log file
	cmd     *exec.Cmd
	done    chan struct{}
	l       *Lab
}

// Lab is a running VM lab.
type Lab struct {
	NS       string // the switch namespace: bridge, taps, the QEMU processes
	Bridge   string
	Client   *Guest
	LB       *Guest
	Servers  []*Guest
	VIPs     []netip.Addr
	Topology lab.Options
	Kernel   *Kernel
	dir      string
	log      func(string, ...any)
	mu       sync.Mutex
	closed   bool
}

// hostAddrs are the host's addresses on the lab segment (the bridge in the switch
// namespace), from which it reaches the agents: .1 of the servers' subnet and .254 of the
// clients' (neither is a lab machine's).
func hostAddrs(o lab.Options) []netip.Prefix {
	at := func(p netip.Prefix, h byte) netip.Prefix {
		a := p.Addr().As4()
		a[3] = h
		return netip.PrefixFrom(netip.AddrFrom4(a), p.Bits())
	}
	return []netip.Prefix{at(o.Subnet4, 1), at(o.ClientSubnet4, 254)}
}

func (o *Options) defaults() error {
	if o.Prefix == "" || o.Bin == "" {
		return errors.New("vm lab: Prefix and Bin are required")
	}
	if o.Cache == "" {
		o.Cache = DefaultCache
	}
	t := &o.Topology
	t.Prefix = o.Prefix
	t.NoIPv6 = true
	if t.Clients == 0 {
		t.Clients = 20
	}
	if t.Servers == nil {
		t.Servers = []lab.ServerSpec{{Name: "HT1", Host: 115}, {Name: "HT2", Host: 116}}
	}
	if o.Progs == nil {
		o.Progs = []string{"medialb", "vossim"}
	}
	if o.LBCPUs == 0 {
		o.LBCPUs = 2
	}
	if o.LBQueues == 0 {
		o.LBQueues = o.LBCPUs
	}
	if o.LBMemory == 0 {
		o.LBMemory = 768
	}
	if o.Memory == 0 {
		o.Memory = 384
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	return nil
}

// New fetches the kernel, builds the initramfs, makes the switch namespace with its
// bridge and taps and boots every guest, then waits for their agents. On error it removes
// what it made; otherwise the caller must Close the lab.
func New(ctx context.Context, o Options) (_ *Lab, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("vm lab: needs root (network namespaces, taps)")
	}
	machines, topo, err := lab.Topology(o.Topology)
	if err != nil {
		return nil, fmt.Errorf("vm lab: %w", err)
	}
	k, err := FetchKernel(o.Cache)
	if err != nil {
		return nil, err
	}
	if err := lab.Cleanup(o.Prefix); err != nil {
		return nil, err
	}
	lab.SweepStale(o.Prefix)
	dir, err := os.MkdirTemp(o.Cache, "run-"+strings.TrimSuffix(o.Prefix, "-")+"-")
	if err != nil {
		return nil, fmt.Errorf("vm lab: %w", err)
	}
	l := &Lab{NS: o.Prefix + "vm", Bridge: o.Prefix + "br", VIPs: topo.VIPs, Topology: topo, Kernel: k, dir: dir, log: o.Log}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := BuildInitramfs(initrd, k, o.Bin, o.Progs); err != nil {
		return nil, err
	}
	if err := l.buildSwitch(topo); err != nil {
		return nil, err
	}
	for i, m := range machines {
		g := &Guest{Machine: m, Addr: m.Addrs[0].Addr(), l: l, Tap: fmt.Sprintf("%st%d", o.Prefix, i),
			MAC: net.HardwareAddr{0x52, 0x54, 0x00, byte(m.Addrs[0].Addr().As4()[2]), 0, byte(m.Host)}}
		if m.Role == lab.RoleClient {
			g.MAC[5] = 1
		}
		switch m.Role {
		case lab.RoleClient:
			l.Client = g
		case lab.RoleLoadBalancer:
			if l.LB != nil {
				continue // one load balancer in the VM lab
			}
			l.LB = g
		case lab.RoleRealServer:
			l.Servers = append(l.Servers, g)
		}
		if err := l.boot(g, o, initrd); err != nil {
			return nil, err
		}
	}
	for _, g := range l.Guests() {
		if err := g.WaitReady(ctx, 8*time.Minute); err != nil { // TCG boots take minutes on a busy host
			return nil, err
		}
	}
	return l, nil
}

// Guests returns every guest: client, load balancer, real servers.
func (l *Lab) Guests() []*Guest {
	return append([]*Guest{l.Client, l.LB}, l.Servers...)
}

func (l *Lab) run(name string, args ...string) error {
	out, err := lab.Exec(l.NS, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("run %s %s in %s: %w: %s", name, strings.Join(args, " "), l.NS, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// buildSwitch makes the namespace and its bridge, with the host's addresses on it.
func (l *Lab) buildSwitch(o lab.Options) error {
	if err := lab.NewNamespace(l.NS); err != nil {
		return err
	}
	steps := [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", l.Bridge, "type", "bridge", "mcast_snooping", "0"},
		{"ip", "link", "set", l.Bridge, "up"},
	}
	for _, a := range hostAddrs(o) {
		steps = append(steps, []string{"ip", "addr", "add", a.String(), "dev", l.Bridge})
	}
	for _, s := range steps {
		if err := l.run(s[0], s[1:]...); err != nil {
			return fmt.Errorf("vm lab switch: %w", err)
		}
	}
	// A plain switch: br_netfilter would drop the malformed-frame barrage (lab.PlainSwitch).
	if err := lab.Do(l.NS, lab.PlainSwitch); err != nil {
		return fmt.Errorf("vm lab switch: %w", err)
	}
	return nil
}

// boot makes g's tap and starts its QEMU inside the switch namespace.
func (l *Lab) boot(g *Guest, o Options, initrd string) error {
	lb := g.Role == lab.RoleLoadBalancer
	tap := []string{"ip", "tuntap", "add", "dev", g.Tap, "mode", "tap"}
	if lb {
		tap = append(tap, "multi_queue")
	}
	for _, s := range [][]string{tap, {"ip", "link", "set", g.Tap, "master", l.Bridge}, {"ip", "link", "set", g.Tap, "up"}} {
		if err := l.run(s[0], s[1:]...); err != nil {
			return fmt.Errorf("vm lab: tap of %s: %w", g.Name, err)
		}
	}
	var addrs, onlink, vips []string
	for _, a := range g.Addrs {
		addrs = append(addrs, a.String())
	}
	for _, p := range g.OnLink {
		onlink = append(onlink, p.String())
	}
	onlink = append(onlink, "") // trimmed below
	for _, v := range g.VIPs {
		vips = append(vips, v.String())
	}
	appendArgs := []string{"console=ttyS0", "panic=-1", "quiet", "loglevel=4", "no_timer_check", // a loaded TCG host fails the IO-APIC timer check

		"medialb.role=" + string(g.Role), "medialb.name=" + g.Name, "medialb.addr=" + strings.Join(addrs, ","),
		"medialb.onlink=" + strings.Trim(strings.Join(onlink, ","), ","), "medialb.modules=" + moduleNames(l.Kernel)}
	if len(vips) > 0 {
		appendArgs = append(appendArgs, "medialb.vip="+strings.Join(vips, ","))
	}
	cpus, mem := 1, o.Memory
	if lb {
		cpus, mem = o.LBCPUs, o.LBMemory
	}
	netdev, dev := nicArgs(g, o, lb)
	g.Console = filepath.Join(l.dir, g.Name+".console")
	args := []string{"-name", g.Name + ",debug-threads=on", "-accel", "tcg", "-cpu", "max", "-smp", strconv.Itoa(cpus), "-m", strconv.Itoa(mem),
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "file:" + g.Console,
		"-kernel", l.Kernel.Image, "-initrd", initrd, "-append", strings.Join(appendArgs, " "),
		"-netdev", netdev, "-device", dev}
	g.cmd = lab.Exec(l.NS, "qemu-system-x86_64", args...)
	g.cmd.Stdout, g.cmd.Stderr = nil, nil
	qlog, err := os.Create(filepath.Join(l.dir, g.Name+".qemu"))
	if err == nil {
		g.cmd.Stdout, g.cmd.Stderr = qlog, qlog
	}
	l.log("vm lab: boot %s (%s): qemu-system-x86_64 %s", g.Name, g.Addr, strings.Join(args, " "))
	if err := g.cmd.Start(); err != nil {
		return fmt.Errorf("vm lab: start QEMU for %s: %w (is qemu-system-x86 installed?)", g.Name, err)
	}
	g.done = make(chan struct{})
	go func() {
		g.cmd.Wait()
		if qlog != nil {
			qlog.Close()
		}
		close(g.done)
	}()
	return nil
}

// nicArgs returns the -netdev and -device arguments of g's NIC; lb: the load balancer's
// (multi-queue, iommu_platform for zero-copy, no rss=on: see the package comment).
func nicArgs(g *Guest, o Options, lb bool) (netdev, dev string) {
	netdev = "tap,id=n0,ifname=" + g.Tap + ",script=no,downscript=no,vhost=off"
	dev = "virtio-net-pci,netdev=n0,mac=" + g.MAC.String() + ",disable-legacy=on,romfile="
	if lb {
		netdev += ",queues=" + strconv.Itoa(o.LBQueues)
		dev += ",mq=on,vectors=" + strconv.Itoa(2*o.LBQueues+2)
		if !o.NoIOMMU {
			dev += ",iommu_platform=on"
		}
	}
	return netdev, dev
}

// Close stops every guest and removes the namespace (taps and bridge go with it) and the
// run's files.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	err := lab.Cleanup(strings.TrimSuffix(l.NS, "vm"))
	os.RemoveAll(l.dir)
	return err
}

// Dir is the directory of the run's files (consoles, QEMU logs, the initramfs).
func (l *Lab) Dir() string { return l.dir }
