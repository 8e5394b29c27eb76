package realserver

import (
	"strings"
	"testing"

	"github.com/medialb/medialb/config"
)

func TestSetup(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`node: { interface: eth0 }
virtual_services:
  - name: Web
    address: 192.168.94.100
    ports: "8080"
    layer: 7
    real_servers: [{ name: HM1, address: 192.168.94.105 }]
  - name: Traffic
    address: 192.168.94.110
    ports: "1935,554"
    layer: 4
    real_servers: [{ name: HT1, address: 192.168.94.115 }]
  - name: Traffic6
    address: fd94::110
    ports: "5000"
    layer: 4
    protocol: udp
    real_servers: [{ name: HT1, address: "fd94::115" }]
  - name: Ingest
    address: 192.168.94.111
    ports: "1935"
    layer: 4
    real_servers: [{ name: HT1, address: 192.168.94.115 }]
`))
	if err != nil {
		t.Fatal(err)
	}
	targets := Targets(cfg)
	if len(targets) != 3 || targets[0].Port != 1935 || targets[1].Port != 0 || targets[1].VIP.String() != "fd94::110" {
		t.Fatalf("targets %+v: want the layer-4 servers, port 0 (ICMP) for the UDP service", targets)
	}
	for _, tc := range []struct {
		os        string
		want, not []string
	}{
		{"linux", []string{
			"# HT1 (192.168.94.115): real server of Traffic, Ingest\n",
			"sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2\n",
			"ip addr add 192.168.94.110/32 dev lo\nip addr add 192.168.94.111/32 dev lo\n",
			"# HT1 (fd94::115): real server of Traffic6\n",
			"ip addr add fd94::110/128 dev lo\n",
		}, []string{"192.168.94.100", "HM1"}},
		{"windows", []string{
			"netsh interface ipv4 add address \"loopback\" 192.168.94.110 255.255.255.255\n",
			"netsh interface ipv4 set interface \"net\" weakhostreceive=enabled\n",
			"netsh interface ipv4 set interface \"loopback\" weakhostsend=enabled\n",
			"netsh interface ipv6 add address \"loopback\" fd94::110/128\n",
			"netsh interface ipv6 set interface \"loopback\" weakhostreceive=enabled\n",
		}, []string{"sysctl"}},
	} {
		var b strings.Builder
		if err := Setup(&b, cfg, tc.os); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: lacks %q:\n%s", tc.os, w, b.String())
			}
		}
		for _, n := range tc.not {
			if strings.Contains(b.String(), n) {
				t.Errorf("%s: has %q (layer 7 needs no setup):\n%s", tc.os, n, b.String())
			}
		}
	}
	if err := Setup(&strings.Builder{}, cfg, "bsd"); err == nil || !strings.Contains(err.Error(), `unknown --os "bsd"`) {
		t.Errorf("--os bsd: %v", err)
	}
}
