package afxdp

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Zero-copy settings, as Config.ZeroCopy spells them.
const (
	ZeroCopyAuto = "auto"
	ZeroCopyOn   = "on"
	ZeroCopyOff  = "off"
)

// Defaults sized for media: bursts of full-size frames on every queue.
const (
	DefaultNumFrames = 4096
	DefaultFrameSize = 2048
	DefaultRingSize  = 2048
)

// Config says which interface and queues to open and how.
type Config struct {
	Interface string
	Queues    int    // number of RX queues to serve from 0; 0 means all
	NumFrames int    // UMEM frames per socket; 0 means DefaultNumFrames
	FrameSize int    // 2048 or 4096; 0 means DefaultFrameSize
	RingSize  int    // entries of each of the four rings, a power of two; 0 means DefaultRingSize
	XDPMode   string // auto (native, else generic), native or generic
	ZeroCopy  string // auto (zero-copy if the driver offers it), on or off
	BusyPoll  bool   // set SO_PREFER_BUSY_POLL/SO_BUSY_POLL on the sockets
	// TXBudget is the most frames one sendto sends in copy mode:
	// TXBudgetKernel (0, the default: the kernel's 32), TXBudgetRing (the TX
	// ring size), or a count (txbudget.go).
	TXBudget int
	// FastPathEntries is the size of the fast-path map (see FastPath); 0 means
	// DefaultFastPathEntries.
	FastPathEntries int
	Logger          zerolog.Logger
}

func (c *Config) setDefaults() error {
	if c.Interface == "" {
		return errors.New("no interface given")
	}
	if c.NumFrames == 0 {
		c.NumFrames = DefaultNumFrames
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	if c.XDPMode == "" {
		c.XDPMode = ModeAuto
	}
	if c.ZeroCopy == "" {
		c.ZeroCopy = ZeroCopyAuto
	}
	if c.FastPathEntries == 0 {
		c.FastPathEntries = DefaultFastPathEntries
	}
	switch {
	case c.FastPathEntries < 0:
		return fmt.Errorf("fast-path entries %d: want 0 (default) or more", c.FastPathEntries)
	case c.FrameSize != 2048 && c.FrameSize != 4096:
		return fmt.Errorf("frame size %d: want 2048 or 4096", c.FrameSize)
	case c.RingSize <= 0 || c.RingSize&(c.RingSize-1) != 0:
		return fmt.Errorf("ring size %d: want a power of two", c.RingSize)
	case c.NumFrames < c.RingSize:
		return fmt.Errorf("%d frames for rings of %d: want at least as many frames as ring entries", c.NumFrames, c.RingSize)
	case c.Queues < 0:
		return fmt.Errorf("queues %d: want 0 (all) or more", c.Queues)
	}
	switch c.XDPMode {
	case ModeAuto, ModeNative, ModeGeneric:
	default:
		return fmt.Errorf("XDP mode %q: want auto, native or generic", c.XDPMode)
	}
	switch c.ZeroCopy {
	case ZeroCopyAuto, ZeroCopyOn, ZeroCopyOff:
	default:
		return fmt.Errorf("zero-copy %q: want auto, on or off", c.ZeroCopy)
	}
	return nil
}

// Dataplane is the steering program attached to one interface plus one
// AF_XDP socket per RX queue. SetVIPs, ProgramStats, Mode and Close may be
// called from any goroutine; each Socket belongs to one worker goroutine.
type Dataplane struct {
	ifname   string
	ifindex  int
	log      zerolog.Logger
	objs     steerObjects
	link     link.Link
	xdpMode  string
	zeroCopy bool
	linkType string
	driver   string // ethtool's driver name ("virtio_net"); empty if unknown
	sockets  []*Socket
	fp       *FastPath
	groOff   func() error // turns GRO off again (gro.go); nil if Open left it alone

	mu   sync.Mutex // serialises SetVIPs and Close
	keys map[steerVipKey]uint8
}

// Open loads the steering program, attaches it to cfg.Interface through a
// BPF link (replacing a program left there through netlink), opens one
// AF_XDP socket per RX queue and puts them in the XSKMAP. No VIP is steered
// until SetVIPs. The interface is looked up in the calling thread's network
// namespace.
func Open(cfg Config) (*Dataplane, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("open AF_XDP dataplane: %w", err)
	}
	log := cfg.Logger
	l, err := lookupLink(cfg.Interface)
	if err != nil {
		return nil, err
	}
	if l.Attrs().OperState != netlink.OperUp && l.Attrs().Flags&net.FlagUp == 0 {
		log.Warn().Str("interface", cfg.Interface).Str("state", l.Attrs().OperState.String()).
			Msg("interface is down: no frames until it comes up")
	}
	nq, src := rxQueues(l)
	if cfg.Queues > 0 {
		if cfg.Queues > nq {
			return nil, fmt.Errorf("open AF_XDP dataplane: %d queues requested, %s has %d (from %s)", cfg.Queues, cfg.Interface, nq, src)
		}
		nq = cfg.Queues
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		log.Debug().Err(err).Msg("raising RLIMIT_MEMLOCK failed (not needed on kernels with memcg accounting)")
	}
	spec, err := loadSteer()
	if err != nil {
		return nil, fmt.Errorf("load BPF spec: %w", err)
	}
	if uint32(nq) > spec.Maps["xsks"].MaxEntries {
		spec.Maps["xsks"].MaxEntries = uint32(nq)
	}
	spec.Maps["fastpath"].MaxEntries = uint32(cfg.FastPathEntries)
	d := &Dataplane{ifname: cfg.Interface, ifindex: l.Attrs().Index, log: log, linkType: l.Type(), driver: driverName(cfg.Interface), keys: map[steerVipKey]uint8{}}
	if err := spec.LoadAndAssign(&d.objs, nil); err != nil {
		return nil, fmt.Errorf("load XDP steering program: %w", err)
	}
	if d.fp, err = newFastPath(d.objs.Fastpath, d.objs.FpGen); err != nil {
		d.Close()
		return nil, err
	}

	d.link, d.xdpMode, err = attachXDP(d.objs.XdpSteer, l, cfg.XDPMode, log)
	if err != nil {
		d.Close()
		return nil, err
	}
	if cfg.Queues == 0 {
		nq, src = queuesAfterAttach(l, nq, src, log)
	}
	d.groOff = vethGRO(cfg.Interface, d.linkType, d.xdpMode, log) // gro.go
	if err := d.openSockets(cfg, nq); err != nil {
		d.Close()
		return nil, err
	}
	log.Info().Str("interface", cfg.Interface).Int("queues", nq).Str("queue_count_from", src).
		Str("xdp_mode", d.xdpMode).Bool("zero_copy", d.zeroCopy).Int("frames", cfg.NumFrames).
		Int("frame_size", cfg.FrameSize).Int("ring_size", cfg.RingSize).Msg("AF_XDP dataplane open")
	return d, nil
}

// busyRetry is how long Open retries a queue that answers EBUSY: a process
// killed a moment ago may still be releasing it.
const busyRetry = 3 * time.Second

func (d *Dataplane) openSockets(cfg Config, nq int) error {
	zc := cfg.ZeroCopy
	if d.xdpMode == ModeGeneric && zc != ZeroCopyOff {
		if zc == ZeroCopyOn {
			return fmt.Errorf("open AF_XDP sockets: zero-copy needs native XDP, but %s runs generic XDP", cfg.Interface)
		}
		cfg.Logger.Info().Str("interface", cfg.Interface).Msg("AF_XDP copy mode: generic XDP cannot do zero-copy")
		zc = ZeroCopyOff
	}
	for q := 0; q < nq; q++ {
		sc := socketConfig{
			ifindex: d.ifindex, queue: q, numFrames: cfg.NumFrames, frameSize: cfg.FrameSize,
			ringSize: cfg.RingSize, busyPoll: cfg.BusyPoll, batch: 64, txBudget: cfg.TXBudget, log: cfg.Logger,
		}
		var s *Socket
		var err error
		deadline := time.Now().Add(busyRetry)
		for {
			switch zc {
			case ZeroCopyOn, ZeroCopyAuto:
				sc.bindFlags = unix.XDP_ZEROCOPY
			default:
				sc.bindFlags = unix.XDP_COPY
			}
			s, err = newSocket(sc)
			if errno, ok := zeroCopyFallback(zc, err); ok {
				// EOPNOTSUPP is a driver without zero-copy (veth): expected. Any
				// other errno (EINVAL: virtio-net without iommu_platform) is a
				// setup that could do better: a warning.
				ev := cfg.Logger.Warn()
				if errno == unix.EOPNOTSUPP {
					ev = cfg.Logger.Info()
				}
				ev.Str("interface", cfg.Interface).Int("queue", q).Str("errno", errnoName(errno)).Err(err).
					Msg("AF_XDP copy mode: the zero-copy bind failed (zero_copy: auto falls back; set zero_copy: on to make it an error)")
				zc = ZeroCopyOff
				continue
			}
			if err != nil && errors.Is(err, unix.EBUSY) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			break
		}
		if err != nil {
			return fmt.Errorf("open AF_XDP socket on %s: %w", cfg.Interface, err)
		}
		d.sockets = append(d.sockets, s)
		d.zeroCopy = s.zeroCopy
		if err := d.objs.Xsks.Put(uint32(q), uint32(s.fd)); err != nil {
			return fmt.Errorf("insert socket of queue %d in XSKMAP: %w", q, err)
		}
	}
	return nil
}

// zeroCopyFallback reports whether err, from opening a socket with the
// zero-copy setting zc, makes Open retry the queue in copy mode, and the errno
// of the failed bind. In auto mode any failed zero-copy bind falls back
// (EOPNOTSUPP from a driver without zero-copy, EINVAL from virtio-net without
// an IOMMU-mapped device, ...) except EBUSY, which a copy bind would meet
// too (the queue is held). "on" never falls back: its failure is Open's.
func zeroCopyFallback(zc string, err error) (unix.Errno, bool) {
	var be *bindError
	if zc != ZeroCopyAuto || !errors.As(err, &be) || be.flags&unix.XDP_ZEROCOPY == 0 {
		return 0, false
	}
	var errno unix.Errno
	errors.As(be.err, &errno)
	return errno, errno != unix.EBUSY
}

// errnoName is the symbolic name of e ("EINVAL"), for logs.
func errnoName(e unix.Errno) string {
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}

// Sockets returns the sockets, index = RX queue.
func (d *Dataplane) Sockets() []*Socket { return d.sockets }

// Mode returns the XDP attach mode (native or generic) and whether the
// sockets run zero-copy.
func (d *Dataplane) Mode() (xdp string, zeroCopy bool) { return d.xdpMode, d.zeroCopy }

// Interface returns the interface name.
func (d *Dataplane) Interface() string { return d.ifname }

// FastPath returns the steering program's fast path. It forwards nothing
// until SetVIPs is given VIPs with FastPath set.
func (d *Dataplane) FastPath() *FastPath { return d.fp }

// CanXDPTX reports whether frames the steering program sends back with XDP_TX
// leave the interface without help from elsewhere. A veth in native mode
// delivers them only if its peer has an XDP program (XDP_PASS is enough),
// which this node cannot see: then ok is false and why says so.
func (d *Dataplane) CanXDPTX() (ok bool, why string) {
	if d.linkType == "veth" && d.xdpMode == ModeNative {
		return false, "native XDP on a veth: XDP_TX reaches the peer only if the peer has an XDP program"
	}
	if d.zeroCopy && d.driver == "virtio_net" {
		return false, "virtio-net in zero-copy mode: frames sent back with XDP_TX from a zero-copy queue never left the NIC (Linux 7.2, lab/vm); copy mode forwards them"
	}
	return true, ""
}

// SetVIPs makes vips the complete set of steered destinations: keys no longer
// wanted are deleted and new ones added, in place, while the program stays
// attached (a reload drops nothing). On error the map may hold part of the new
// set; calling SetVIPs again converges.
//
// A VIP with FastPath set gets its service's fast-path id (see FastPath); the
// generation is bumped, so decisions recorded before no longer apply.
func (d *Dataplane) SetVIPs(vips []VIP) error {
	live := map[string]uint8{}
	var idErr error
	want, err := vipKeyValues(vips, func(v VIP) uint8 {
		if !v.FastPath || d.fp == nil {
			return 0
		}
		id, err := d.fp.idFor(v.Service)
		if err != nil {
			idErr = err
			return 0
		}
		live[v.Service] = id
		return id
	})
	if err == nil {
		err = idErr
	}
	if err != nil {
		return fmt.Errorf("set VIPs: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fitsLocked(len(want)); err != nil {
		return err
	}
	add, del := diffKeys(d.keys, want)
	if d.fp != nil {
		// Before the map changes: ids of services no longer fast-path resolve
		// to 0, and the pipeline re-reads them with the new generation.
		d.fp.setLive(live)
		if err := d.fp.Bump(); err != nil {
			return fmt.Errorf("set VIPs: %w", err)
		}
	}
	err = applyDiff(d.objs.Vips, want, add, del)
	if err != nil {
		// Re-read what the map holds so the next call diffs against the truth.
		d.keys = readKeys(d.objs.Vips)
		return fmt.Errorf("set VIPs: %w", err)
	}
	d.keys = want
	d.log.Debug().Int("keys", len(want)).Int("added", len(add)).Int("deleted", len(del)).Msg("VIP steering keys updated")
	return nil
}

func readKeys(m *ebpf.Map) map[steerVipKey]uint8 {
	keys := map[steerVipKey]uint8{}
	var k steerVipKey
	var v uint8
	it := m.Iterate()
	for it.Next(&k, &v) {
		keys[k] = v
	}
	return keys
}

// ParseCounters names the counters of bpf/parse.h's pass reasons, index =
// enum parse_stat (index 0, "parsed", is never counted). Every program built
// on parse.h starts its per-CPU stats array with them; its own counters follow.
var ParseCounters = []string{
	"", "pass_not_ip", "pass_no_vip", "pass_no_ports", "pass_malformed", "pass_vlan_stacked", "pass_ext_hdrs",
	"pass_icmp_malformed",
}

// statNames are the steering program's counters, index = enum stat in
// bpf/steer.c.
var statNames = append(ParseCounters[:len(ParseCounters):len(ParseCounters)],
	"redirect", "redirect_frag", "pass_no_socket", "fastpath_tx", "redirect_icmp", "drop_multibuf")

// ProgramStats returns the steering program's counters summed over CPUs:
// fastpath_tx (sent back with XDP_TX by the fast path), redirect (to a
// socket), redirect_frag (of which non-first fragments), redirect_icmp (of
// which ICMP errors), drop_multibuf (a VIP's frame spanning several
// buffers, dropped: bpf/multibuf.h), pass
// (to the kernel) and pass_* by reason (no_socket, not_ip, no_vip, no_ports,
// malformed, vlan_stacked, ext_hdrs, icmp_malformed: an ICMP error with a bad
// quote to an address that is no layer-4 VIP).
func (d *Dataplane) ProgramStats() map[string]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.objs.Stats == nil {
		return map[string]uint64{}
	}
	return ReadCounters(d.objs.Stats, statNames)
}

// TXStats is what became of the frames the pipeline put on the TX rings.
type TXStats struct {
	Completed uint64 // the kernel reported them sent (completion rings of all sockets)
	Invalid   uint64 // the kernel refused the descriptor (XDP_STATISTICS tx_invalid_descs)
	// IfDropped is the interface's tx_dropped counter (netlink): frames its driver
	// dropped, ours and the kernel's own; 0 when it cannot be read.
	IfDropped uint64
}

// TXStats reads the TX completion counters of the sockets and the interface's
// drop counter.
func (d *Dataplane) TXStats() TXStats {
	var st TXStats
	for _, s := range d.Sockets() {
		ss := s.Stats()
		st.Completed += ss.TxCompleted
		st.Invalid += ss.TxInvalid
	}
	if l, err := netlink.LinkByIndex(d.ifindex); err == nil && l.Attrs().Statistics != nil {
		st.IfDropped = l.Attrs().Statistics.TxDropped
	}
	return st
}

// ServerCount returns the frames and bytes the fast path sent to the real server
// with counter slot slot (tables.Server.Slot), summed over CPUs; zero when the
// counters cannot be read.
func (d *Dataplane) ServerCount(slot uint32) (packets, bytes uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.objs.SrvStats == nil || slot == 0 {
		return 0, 0
	}
	var per []steerSrvCount
	if err := d.objs.SrvStats.Lookup(slot, &per); err != nil {
		return 0, 0
	}
	for _, c := range per {
		packets += c.Packets
		bytes += c.Bytes
	}
	return packets, bytes
}

// ReadCounters reads a program's per-CPU stats array m, whose counter i is
// names[i] (an empty name is skipped), summed over CPUs; "pass" is the sum
// of the pass_* counters. A counter that cannot be read is 0.
func ReadCounters(m *ebpf.Map, names []string) map[string]uint64 {
	out := make(map[string]uint64, len(names)+1)
	var per []uint64
	for i, name := range names {
		if name == "" {
			continue
		}
		var sum uint64
		if err := m.Lookup(uint32(i), &per); err == nil {
			for _, v := range per {
				sum += v
			}
		}
		out[name] = sum
		if strings.HasPrefix(name, "pass_") {
			out["pass"] += sum
		}
	}
	return out
}

// Close detaches the program (the interface is left without one), removes
// the sockets from the XSKMAP and closes them. The sockets' goroutines must
// have stopped using them.
func (d *Dataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	// Sockets before the program: virtio-net gives up the queue pairs it took
	// for XDP_TX when the program goes, and a zero-copy socket still bound to
	// one of them then cannot release its buffer pool (the driver refuses,
	// qid >= queue pairs), leaving a pool that crashed the guest kernel at the
	// next attach (xp_alloc_batch NULL dereference, kernel 7.2).
	if d.groOff != nil {
		if err := d.groOff(); err != nil {
			errs = append(errs, err)
		}
		d.groOff = nil
	}
	for _, s := range d.sockets {
		if d.objs.Xsks != nil {
			if err := d.objs.Xsks.Delete(uint32(s.queue)); err != nil && !isNotExist(err) {
				errs = append(errs, fmt.Errorf("remove socket of queue %d from XSKMAP: %w", s.queue, err))
			}
		}
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	d.sockets = nil
	if d.link != nil {
		if err := d.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach XDP program from %s: %w", d.ifname, err))
		}
		d.link = nil
	}
	if err := d.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close BPF objects: %w", err))
	}
	d.objs = steerObjects{}
	return errors.Join(errs...)
}

func isNotExist(err error) bool { return errors.Is(err, ebpf.ErrKeyNotExist) }
