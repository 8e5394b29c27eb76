package vm

import (
	"net"
	"strings"
	"testing"
)

// TestNICArgs: the load balancer's NIC has one queue pair per vCPU and no rss=on. With
// rss=on QEMU 7.2 steers in software (its eBPF RSS does not load with libbpf 1.x) and
// parks a frame for a full virtqueue on the tap queue it came from, which it then never
// reads again: in TestVMLab half the probes timed out after the malformed-frame barrage.
func TestNICArgs(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:5e:00:02")
	g := &Guest{Tap: "vm-x-t1", MAC: mac}
	for _, tc := range []struct {
		name       string
		o          Options
		lb         bool
		netdev     []string
		dev        []string
		devMissing []string
	}{
		{name: "lb defaults", o: Options{Prefix: "x", Bin: "/b"}, lb: true,
			netdev: []string{"vhost=off", "queues=2"}, dev: []string{"mq=on", "vectors=6", "iommu_platform=on"},
			devMissing: []string{"rss"}},
		{name: "lb 4 CPUs no IOMMU", o: Options{Prefix: "x", Bin: "/b", LBCPUs: 4, NoIOMMU: true}, lb: true,
			netdev: []string{"queues=4"}, dev: []string{"vectors=10"}, devMissing: []string{"rss", "iommu_platform"}},
		{name: "server", o: Options{Prefix: "x", Bin: "/b"},
			netdev: []string{"ifname=vm-x-t1", "vhost=off"}, dev: []string{"mac=52:54:00:5e:00:02"},
			devMissing: []string{"mq=", "rss", "queues="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.o.defaults(); err != nil {
				t.Fatal(err)
			}
			netdev, dev := nicArgs(g, tc.o, tc.lb)
			for _, w := range tc.netdev {
				if !strings.Contains(netdev, w) {
					t.Errorf("-netdev %s: no %s", netdev, w)
				}
			}
			for _, w := range tc.dev {
				if !strings.Contains(dev, w) {
					t.Errorf("-device %s: no %s", dev, w)
				}
			}
			for _, w := range tc.devMissing {
				if strings.Contains(dev, w) || strings.Contains(netdev, w) {
					t.Errorf("-netdev %s -device %s: has %s", netdev, dev, w)
				}
			}
		})
	}
}
