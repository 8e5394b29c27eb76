package afxdp

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// XDP attach modes, as Config.XDPMode and Dataplane.Mode spell them.
const (
	ModeAuto    = "auto"
	ModeNative  = "native"
	ModeGeneric = "generic"
)

// lookupLink finds ifname through netlink, in the calling thread's network
// namespace.
func lookupLink(ifname string) (netlink.Link, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("look up interface %q: %w (check the interface name in the config)", ifname, err)
	}
	return l, nil
}

// removeForeignProgram detaches an XDP program attached to the interface
// through netlink (ip link set ... xdp, xdp-loader, an old medialb), which
// would otherwise make the BPF link attach fail with EBUSY. A program held by
// a BPF link belongs to a live process and is left alone: that is an error.
// It returns the ID of the program it removed, or 0.
func removeForeignProgram(l netlink.Link, log zerolog.Logger) (uint32, error) {
	x := l.Attrs().Xdp
	if x == nil || !x.Attached || x.ProgId == 0 {
		return 0, nil
	}
	ifname := l.Attrs().Name
	var flags []int
	switch x.AttachMode {
	case nl_XDP_ATTACHED_SKB:
		flags = []int{unix.XDP_FLAGS_SKB_MODE}
	case nl_XDP_ATTACHED_DRV:
		flags = []int{unix.XDP_FLAGS_DRV_MODE}
	case nl_XDP_ATTACHED_HW:
		flags = []int{unix.XDP_FLAGS_HW_MODE}
	default:
		flags = []int{unix.XDP_FLAGS_DRV_MODE, unix.XDP_FLAGS_SKB_MODE, unix.XDP_FLAGS_HW_MODE}
	}
	var err error
	for _, f := range flags {
		if err = netlink.LinkSetXdpFdWithFlags(l, -1, f); err == nil {
			break
		}
	}
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return 0, fmt.Errorf("replace XDP program %d on %s: it is held by a BPF link (another medialb running, or a link pinned under /sys/fs/bpf): %w", x.ProgId, ifname, err)
		}
		return 0, fmt.Errorf("remove XDP program %d left on %s: %w (try: ip link set dev %s xdp off)", x.ProgId, ifname, err, ifname)
	}
	log.Warn().Str("interface", ifname).Uint32("prog_id", x.ProgId).Uint32("attach_mode", x.AttachMode).
		Msg("removed an XDP program attached through netlink (left by ip/xdp-loader or an earlier run); replacing it with ours")
	return x.ProgId, nil
}

// netlink's IFLA_XDP_ATTACHED values.
const (
	nl_XDP_ATTACHED_DRV = 1
	nl_XDP_ATTACHED_SKB = 2
	nl_XDP_ATTACHED_HW  = 3
)

// AttachProgram attaches an XDP program to ifname as Open attaches the
// steering program: through a BPF link, replacing a program attached through
// netlink, in mode (auto: native, else generic). It returns the link, which
// detaches the program when closed, and the mode in use. The interface is
// looked up in the calling thread's network namespace. It is for programs
// built on bpf/parse.h beside the product (perf/xdpref's references).
func AttachProgram(prog *ebpf.Program, ifname, mode string, log zerolog.Logger) (link.Link, string, error) {
	l, err := lookupLink(ifname)
	if err != nil {
		return nil, "", err
	}
	return attachXDP(prog, l, mode, log)
}

// attachXDP attaches prog through a BPF link (the kernel removes it when the
// process dies) in the requested mode; in auto mode native is tried first and
// generic is the logged fallback. It returns the link and the mode in use.
func attachXDP(prog *ebpf.Program, l netlink.Link, mode string, log zerolog.Logger) (link.Link, string, error) {
	ifname, ifindex := l.Attrs().Name, l.Attrs().Index
	if _, err := removeForeignProgram(l, log); err != nil {
		return nil, "", err
	}
	try := func(m string) (link.Link, error) {
		flags := link.XDPDriverMode
		if m == ModeGeneric {
			flags = link.XDPGenericMode
		}
		return link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: flags})
	}
	switch mode {
	case ModeNative, ModeGeneric:
		lk, err := try(mode)
		if err != nil {
			return nil, "", fmt.Errorf("attach XDP program to %s in %s mode: %w", ifname, mode, err)
		}
		log.Info().Str("interface", ifname).Str("xdp_mode", mode).Msg("XDP program attached (mode set in the config)")
		return lk, mode, nil
	case ModeAuto, "":
		lk, err := try(ModeNative)
		if err == nil {
			log.Info().Str("interface", ifname).Str("xdp_mode", ModeNative).Msg("XDP program attached in native (driver) mode")
			return lk, ModeNative, nil
		}
		lk, err2 := try(ModeGeneric)
		if err2 != nil {
			return nil, "", fmt.Errorf("attach XDP program to %s: native: %v; generic: %w", ifname, err, err2)
		}
		log.Warn().Str("interface", ifname).Str("xdp_mode", ModeGeneric).AnErr("native_error", err).
			Msg("XDP program attached in generic (skb) mode: the driver refused native mode; expect lower rates")
		return lk, ModeGeneric, nil
	default:
		return nil, "", fmt.Errorf("attach XDP program: unknown XDP mode %q (want auto, native or generic)", mode)
	}
}

// ethtoolChannels is struct ethtool_channels (linux/ethtool.h).
type ethtoolChannels struct {
	cmd                                         uint32
	maxRx, maxTx, maxOther, maxCombined         uint32
	rxCount, txCount, otherCount, combinedCount uint32
}

// ifreqData is struct ifreq with the ifr_data member.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer // a real pointer, so the GC keeps and adjusts it
	_    [16]byte       // pad to sizeof(struct ifreq)
}

// rxQueues returns the number of RX queues of the interface: the ethtool
// channel count (rx + combined) when the driver reports it, else the sysfs
// queue count, else netlink's IFLA_NUM_RX_QUEUES.
func rxQueues(l netlink.Link) (int, string) {
	if n, err := ethtoolRxChannels(l.Attrs().Name); err == nil && n > 0 {
		return n, "ethtool channels"
	}
	if n := sysfsRxQueues(l); n > 0 {
		return n, "sysfs"
	}
	if n := l.Attrs().NumRxQueues; n > 0 {
		return n, "netlink"
	}
	return 1, "default"
}

func ethtoolRxChannels(ifname string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ch := ethtoolChannels{cmd: unix.ETHTOOL_GCHANNELS}
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	// unsafe: SIOCETHTOOL takes a struct ifreq whose ifr_data points to the
	// command struct. data is an unsafe.Pointer field, so ch stays alive and a
	// stack move updates it; &ifr is converted in the call expression, as
	// unsafe.Pointer rule 4 requires, and stacks do not move during a syscall.
	ifr.data = unsafe.Pointer(&ch)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&ch)
	if e != 0 {
		return 0, e
	}
	return int(ch.rxCount + ch.combinedCount), nil
}
