package afxdp

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// A veth with an XDP program in native mode receives everything through the
// program, one MTU-sized frame at a time: the kernel turns its peer's TSO off
// for any XDP program (xdp.frags ones too, Linux 6.18: "tx-tcp-segmentation:
// off [fixed]" on the peer) and, since 6.7, no longer turns GRO on with XDP. The
// kernel's own traffic on that interface (the layer-7 VIP, the API, health
// checks) then reaches IP and TCP unaggregated, all of it in the veth's one
// NAPI context, which becomes the bottleneck of a layer-7 download.
// Turning GRO on gives it back aggregated segments (GRO runs after XDP, on the
// frames the program passes; the AF_XDP and XDP_TX paths do not see it): on a
// quiet machine the two-VIP download went from 2.6-3.4 to 4.2-4.7 Gbit/s
// (BENCHMARKS.md, l7 vs HAProxy). Real NICs have GRO on by default and are
// left as they are.

// ethtoolValue is struct ethtool_value (linux/ethtool.h).
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ethtoolGRO reads (set == nil) or sets GRO of ifname in the network namespace
// of socket fd.
func ethtoolGRO(fd int, ifname string, set *bool) (bool, error) {
	v := ethtoolValue{cmd: unix.ETHTOOL_GGRO}
	if set != nil {
		v.cmd = unix.ETHTOOL_SGRO
		if *set {
			v.data = 1
		}
	}
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	// unsafe: as in ethtoolRxChannels, ifr_data points to the command struct.
	ifr.data = unsafe.Pointer(&v)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&v)
	if e != 0 {
		return false, e
	}
	return v.data != 0, nil
}

// vethGRO turns GRO on for ifname (in the calling thread's network namespace)
// when it is a veth with the program attached in native mode and GRO is off. It
// returns a function that turns GRO off again, from any thread (nil when
// nothing was changed); failures are logged, not fatal: the dataplane works
// without GRO, only the kernel's own traffic is slower.
func vethGRO(ifname, linkType, xdpMode string, log zerolog.Logger) func() error {
	if linkType != "veth" || xdpMode != ModeNative {
		return nil
	}
	// The socket stays in this namespace: the restore may run in another thread.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Warn().Str("interface", ifname).Err(err).Msg("cannot open a socket to read GRO of the veth")
		return nil
	}
	on, err := ethtoolGRO(fd, ifname, nil)
	if err != nil || on {
		if err != nil {
			log.Warn().Str("interface", ifname).Err(err).Msg("cannot read GRO of the veth (ethtool ioctl); the kernel's traffic on it may arrive unaggregated")
		}
		unix.Close(fd)
		return nil
	}
	t := true
	if _, err := ethtoolGRO(fd, ifname, &t); err != nil {
		unix.Close(fd)
		log.Warn().Str("interface", ifname).Err(err).
			Msg("cannot turn GRO on for the veth: the kernel's traffic on it (layer 7 included) arrives in MTU-sized frames (try: ethtool -K IFACE gro on)")
		return nil
	}
	log.Info().Str("interface", ifname).
		Msg("GRO turned on for the veth: with an XDP program its peer sends MTU-sized frames (no TSO), GRO aggregates those the program passes to the kernel")
	return func() error {
		defer unix.Close(fd)
		f := false
		if _, err := ethtoolGRO(fd, ifname, &f); err != nil {
			return fmt.Errorf("turn GRO of %s off again: %w", ifname, err)
		}
		return nil
	}
}
