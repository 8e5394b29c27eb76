package afxdp

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WantRXRing is the RX ring size (descriptors) below which [RXRingAdvice]
// advises a larger ring: enough to hold a few milliseconds of small frames while
// the interface's NAPI thread is kept off its core (BENCHMARKS.md, the flood
// section: with a 4096-frame queue ahead of the receive path nothing was lost
// before XDP, with 256 frames established clients lost some).
const WantRXRing = 4096

// ethtoolRingparam is struct ethtool_ringparam (linux/ethtool.h).
type ethtoolRingparam struct {
	cmd                                                    uint32
	rxMaxPending, rxMiniMaxPending, rxJumboMaxPending      uint32
	txMaxPending, rxPending, rxMiniPending, rxJumboPending uint32
	txPending                                              uint32
}

// RXRing returns the RX ring size of ifname (in the caller's network namespace)
// and the largest the driver allows (ethtool -g). Drivers without rings (veth)
// return an error (EOPNOTSUPP).
func RXRing(ifname string) (pending, max uint32, err error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("read RX ring size of %s: %w", ifname, err)
	}
	defer unix.Close(fd)
	rp := ethtoolRingparam{cmd: unix.ETHTOOL_GRINGPARAM}
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	// unsafe: as in ethtoolRxChannels (the same ifreq, another command struct).
	ifr.data = unsafe.Pointer(&rp)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&rp)
	if e != 0 {
		return 0, 0, fmt.Errorf("read RX ring size of %s: %w", ifname, e)
	}
	return rp.rxPending, rp.rxMaxPending, nil
}

// RXRingAdvice says what to do about an RX ring of pending descriptors (max
// the driver's limit) on ifname, or "" when it holds WantRXRing frames or is as
// large as the driver allows.
func RXRingAdvice(ifname string, pending, max uint32) string {
	want := min(max, WantRXRing)
	if pending >= want {
		return ""
	}
	return fmt.Sprintf("RX ring of %s holds %d frames (driver maximum %d): while the receive path is kept off its core "+
		"for a moment, a short ring drops established clients' frames and the node's own traffic before XDP; "+
		"raise it: ethtool -G %s rx %d", ifname, pending, max, ifname, want)
}
