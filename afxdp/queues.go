package afxdp

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// queuesAfterAttach returns how many RX queues need a socket once the program is
// attached: nq (the channel count, src says where from) unless the device now
// delivers on more. virtio-net takes one queue pair per CPU for XDP_TX when a
// program attaches and enables those pairs' RX halves too, while ethtool still
// reports the old channel count: frames hashed there found no socket and went
// to the kernel (TCP resets, ICMP port unreachables for VIP traffic). A
// zero-copy socket cannot share those pairs with XDP_TX either (the fast path's
// frames were lost). So RSS is first pointed at the nq channel queues alone
// (ETHTOOL_SRXFHINDIR; the driver keeps a table set by the user); a device
// without RSS gets a socket on every RX queue instead, with a warning.
func queuesAfterAttach(l netlink.Link, nq int, src string, log zerolog.Logger) (int, string) {
	live := sysfsRxQueues(l)
	if live <= nq {
		return nq, src
	}
	name := l.Attrs().Name
	size, err := setRSSQueues(name, nq)
	if err == nil {
		log.Info().Str("interface", name).Int("channels", nq).Int("rx_queues", live).Int("indirection_entries", size).
			Msg("attaching XDP enabled more RX queues than the channel count (virtio-net's XDP_TX queue pairs): RSS now spreads over the channel queues only")
		return nq, src
	}
	log.Warn().Str("interface", name).Int("channels", nq).Int("rx_queues", live).Err(err).
		Msg("attaching XDP enabled more RX queues than the channel count and RSS cannot be narrowed: a socket on each (on virtio-net under QEMU, a queue pair per vCPU leaves no extra queues)")
	return live, "sysfs after XDP attach"
}

// sysfsRxQueues counts /sys/class/net/IF/queues/rx-* (the device's real RX
// queues); 0 if unknown. sysfs shows the namespace it was mounted in, so the
// count is used only when its ifindex is l's.
func sysfsRxQueues(l netlink.Link) int {
	name := l.Attrs().Name
	idx, err := os.ReadFile(filepath.Join("/sys/class/net", name, "ifindex"))
	if err != nil || strings.TrimSpace(string(idx)) != strconv.Itoa(l.Attrs().Index) {
		return 0
	}
	ents, _ := filepath.Glob(filepath.Join("/sys/class/net", name, "queues", "rx-*"))
	return len(ents)
}

// ethtoolRxfhIndir is struct ethtool_rxfh_indir with room for the table.
type ethtoolRxfhIndir struct {
	cmd, size uint32
	ring      [512]uint32
}

// setRSSQueues points every entry of the RSS indirection table of ifname at
// queues 0..n-1, round robin, and returns the table's size.
func setRSSQueues(ifname string, n int) (int, error) {
	ind := &ethtoolRxfhIndir{cmd: unix.ETHTOOL_GRXFHINDIR}
	if err := ethtoolIoctl(ifname, unsafe.Pointer(ind)); err != nil {
		return 0, fmt.Errorf("read RSS indirection table size: %w", err)
	}
	size := ind.size
	if size == 0 || size > uint32(len(ind.ring)) {
		return 0, fmt.Errorf("RSS indirection table of %d entries (want 1..%d)", size, len(ind.ring))
	}
	ind.cmd = unix.ETHTOOL_SRXFHINDIR
	for i := uint32(0); i < size; i++ {
		ind.ring[i] = i % uint32(n)
	}
	if err := ethtoolIoctl(ifname, unsafe.Pointer(ind)); err != nil {
		return 0, fmt.Errorf("set RSS indirection table: %w", err)
	}
	return int(size), nil
}

// ethtoolIoctl runs SIOCETHTOOL on ifname with the command struct at data.
func ethtoolIoctl(ifname string, data unsafe.Pointer) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	// unsafe: as in ethtoolRxChannels, ifr_data points to the command struct,
	// which the caller keeps alive; &ifr is converted in the call expression.
	ifr.data = data
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(data)
	if e != 0 {
		return e
	}
	return nil
}

// driverName is the interface's driver as ethtool names it ("virtio_net"),
// empty if the driver does not say.
func driverName(ifname string) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, ifname)
	if err != nil {
		return ""
	}
	return unix.ByteSliceToString(info.Driver[:])
}
