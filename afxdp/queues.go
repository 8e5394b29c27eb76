package afxdp

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
)

// queuesAfterAttach returns how many RX queues need a socket once the program is
// attached: nq (from the channel count, src says where from) or, if more, the
// RX queues the device now really has. virtio-net takes one queue pair per CPU
// for XDP_TX when a program attaches and enables those pairs' RX halves too,
// while ethtool still reports the channels it had: frames hashed to those
// queues found no socket and went to the kernel (a TCP reset, an ICMP port
// unreachable) instead of the pipeline.
func queuesAfterAttach(l netlink.Link, nq int, src string, log zerolog.Logger) (int, string) {
	live := sysfsRxQueues(l)
	if live <= nq {
		return nq, src
	}
	log.Info().Str("interface", l.Attrs().Name).Int("channels", nq).Int("rx_queues", live).
		Msg("attaching XDP enabled more RX queues than the channel count (virtio-net's XDP_TX queue pairs): a socket on each")
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
