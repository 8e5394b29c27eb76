package afxdp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SetChannels sets the channel count (RX/TX queue pairs) of ifname, in the
// caller's network namespace, as `ethtool -L IF combined n` does. Drivers
// refuse it while an XDP program is attached (virtio-net) and above the
// device's maximum. The VM lab's bench uses it to measure 1, 2 and 4 queues on
// one NIC.
func SetChannels(ifname string, n int) error {
	ch := ethtoolChannels{cmd: unix.ETHTOOL_GCHANNELS}
	if err := ethtoolIoctl(ifname, unsafe.Pointer(&ch)); err != nil {
		return fmt.Errorf("read channels of %s: %w", ifname, err)
	}
	// Most NICs (virtio-net) count queue pairs as combined channels; veth
	// counts separate RX and TX channels.
	limit, count := &ch.maxCombined, &ch.combinedCount
	if ch.maxCombined == 0 {
		limit, count = &ch.maxRx, &ch.rxCount
		ch.txCount = min(uint32(n), ch.maxTx)
	}
	if n < 1 || uint32(n) > *limit {
		return fmt.Errorf("set %s to %d channels: the device offers 1..%d", ifname, n, *limit)
	}
	ch.cmd = unix.ETHTOOL_SCHANNELS
	*count = uint32(n)
	if err := ethtoolIoctl(ifname, unsafe.Pointer(&ch)); err != nil {
		return fmt.Errorf("set %s to %d channels: %w (an XDP program attached?)", ifname, n, err)
	}
	return nil
}
