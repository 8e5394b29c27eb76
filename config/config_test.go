package config

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// head is the start of most test configurations: 2 lines, so the first
// service's "- name:" is on line 4.
const head = "node:\n  interface: eth0\nvirtual_services:\n"

// l7 and l4 are valid services, 7 lines each.
const l7 = `  - name: web
    address: 192.0.2.10
    ports: "8080,8443"
    layer: 7
    real_servers:
      - { name: a, address: 192.0.2.21 }
      - { name: b, address: 192.0.2.22 }
`

const l4 = `  - name: media
    address: 192.0.2.11
    ports: "1935,554,50000-65535"
    layer: 4
    protocol: tcp+udp
    real_servers:
      - { name: a, address: 192.0.2.21 }
`

const hash = "$2a$10$u0cqovdTwUFe8GZsu.3X/OU4fJQhpx.weaiGm3.Z4VcxMEaEsc/Pm"

// svc is a layer-4 service on line 4 whose line 8 onward is extra.
func svc(extra string) string {
	return head + `  - name: s
    address: 192.0.2.10
    ports: "80"
    layer: 4
` + extra
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string // exact lines; empty: valid
	}{
		{"valid l7+l4", head + l7 + l4, nil},
		{"empty", "", []string{"t.yaml:1: empty configuration"}},
		{"only comments", "# nothing\n", []string{"t.yaml:1: empty configuration"}},
		{"null document", "~\n", []string{"t.yaml:1: empty configuration"}},
		{"not a mapping", "- a\n- b\n", []string{"t.yaml:1: top level: want a mapping (key: value lines), got a list"}},
		{"yaml syntax", "node:\n  interface: eth0\n   bad: [\n", []string{"t.yaml:3: invalid YAML: mapping values are not allowed in this context"}},
		{"tab indentation", "node:\n\tinterface: eth0\n", []string{"t.yaml:2: invalid YAML: found character that cannot start any token"}},
		{"two documents", head + l7 + "---\nnode: {}\n", []string{"t.yaml:11: a second YAML document (---): put everything in one"}},
		{"missing node and services", "api:\n  users: [{name: a, password_hash: \"" + hash + "\"}]\n", []string{
			"t.yaml:1: node: missing (node.interface, the NIC that carries the VIPs, is required)",
		}},
		{"no services yet (the WebUI adds them)", "node:\n  interface: eth0\n", nil},
		{"no services", "node:\n  interface: eth0\nvirtual_services: []\n", []string{"t.yaml:3: virtual_services: none given (nothing to balance)"}},
		{"unknown top key", head + l7 + "virtual_service: []\n", []string{`t.yaml:11: top level: unknown key "virtual_service" (did you mean "virtual_services"?)`}},
		{"unknown key alias hint", svc("    backends: []\n"), []string{
			`t.yaml:4: virtual_services[0]: real_servers is required (or a fallback)`,
			`t.yaml:8: virtual_services[0]: unknown key "backends" (did you mean "real_servers"?)`,
		}},
		{"unknown key no hint", "node:\n  interface: eth0\n  colour: blue\nvirtual_services:\n" + l7, []string{
			`t.yaml:3: node: unknown key "colour" (known keys: name, interface, hash_seed, state_dir, queues, xdp_mode, zero_copy, xdp_fastpath, rx_priority, busy_poll)`,
		}},
		{"duplicate key", "node:\n  interface: eth0\n  interface: eth1\nvirtual_services:\n" + l7, []string{
			`t.yaml:3: node: key "interface" given twice (first on line 2)`,
		}},
		{"node fields", "node:\n  name: 'lb 1'\n  interface: eth0/1\n  hash_seed: 0\n  state_dir: var/lib\n  queues: -1\n  xdp_mode: skb\n  zero_copy: true\nvirtual_services:\n" + l7, []string{
			`t.yaml:2: node.name: "lb 1": use letters, digits, _ . - (at most 64)`,
			`t.yaml:3: node.interface: "eth0/1" is not a network interface name (at most 15 characters, no /, : or spaces)`,
			`t.yaml:4: node.hash_seed: must not be 0 (leave it out for the default)`,
			`t.yaml:5: node.state_dir: "var/lib" is not an absolute path`,
			`t.yaml:6: node.queues: -1 is out of range 0..1024`,
			`t.yaml:7: node.xdp_mode: "skb" is not one of auto, native, generic`,
			`t.yaml:8: node.zero_copy: write auto, on or off (not true)`,
		}},
		{"xdp_fastpath", "node:\n  interface: eth0\n  xdp_fastpath: fast\nvirtual_services:\n" + l7, []string{
			`t.yaml:3: node.xdp_fastpath: "fast" is not one of auto, on, off`,
		}},
		{"xdp_fastpath bool", "node:\n  interface: eth0\n  xdp_fastpath: true\nvirtual_services:\n" + l7, []string{
			`t.yaml:3: node.xdp_fastpath: write auto, on or off (not true)`,
		}},
		{"hash seed too big", "node:\n  interface: eth0\n  hash_seed: 18446744073709551616\nvirtual_services:\n" + l7, []string{
			`t.yaml:3: node.hash_seed: want a whole number, got the number 18446744073709551616`,
		}},
		{"ports out of range", svc("    ports: \"0,65536,80\"\n    real_servers: [{address: 192.0.2.21}]\n"), []string{
			`t.yaml:8: virtual_services[0]: key "ports" given twice (first on line 6)`,
		}},
		{"ports bad", head + `  - name: s
    address: 192.0.2.10
    ports: "0,65536,,x,80-,9000-8000,554,554,100-200,150-160"
    layer: 4
    real_servers: [{address: 192.0.2.21}]
`, []string{
			`t.yaml:6: virtual_services[0].ports: port 0 is out of range 1..65535`,
			`t.yaml:6: virtual_services[0].ports: port 65536 is out of range 1..65535`,
			`t.yaml:6: virtual_services[0].ports: empty entry in port list (two commas in a row?)`,
			`t.yaml:6: virtual_services[0].ports: "x" is not a port number`,
			`t.yaml:6: virtual_services[0].ports: port range with a missing end`,
			`t.yaml:6: virtual_services[0].ports: port range 9000-8000 is reversed (write 8000-9000)`,
			`t.yaml:6: virtual_services[0].ports: ports 100-200 and 150-160 overlap`,
			`t.yaml:6: virtual_services[0].ports: port 554 is listed twice`,
		}},
		{"ports list bad", head + `  - name: s
    address: 192.0.2.10
    ports:
      - 80
      - 70000
      - "2000-1000"
      - [1]
      - 80
    layer: 4
    real_servers: [{address: 192.0.2.21}]
`, []string{
			`t.yaml:6: virtual_services[0].ports: port range 2000-1000 is reversed (write 1000-2000)`,
			`t.yaml:6: virtual_services[0].ports: port 80 is listed twice`,
			`t.yaml:8: virtual_services[0].ports[1]: 70000 is out of range 1..65535`,
			`t.yaml:10: virtual_services[0].ports[3]: want a port or a range "a-b", got a list`,
		}},
		{"ports list valid with ranges", head + `  - name: s
    address: 192.0.2.10
    ports: [1935, 554, 50000-65535, "6000 - 6001"]
    layer: 4
    real_servers: [{address: 192.0.2.21}]
`, nil},
		{"layer and forwarding", head + `  - name: a
    address: 192.0.2.10
    ports: 80
    layer: 3
    real_servers: [{address: 192.0.2.21}]
  - name: b
    address: 192.0.2.11
    ports: 80
    layer: 4
    forwarding: snat
    real_servers: [{address: 192.0.2.21}]
  - name: c
    address: 192.0.2.12
    ports: 80
    layer: 4
    forwarding: direct_routing
    real_servers: [{address: 192.0.2.21}]
  - name: d
    address: 192.0.2.13
    ports: 80
    layer: 7
    forwarding: direct-routing
    real_servers: [{address: 192.0.2.21}]
  - name: e
    address: 192.0.2.14
    ports: 80
    real_servers: [{address: 192.0.2.21}]
`, []string{
			`t.yaml:7: virtual_services[0].layer: 3 is not a layer medialb balances at: 4 (direct routing) or 7 (SNAT proxy)`,
			`t.yaml:13: virtual_services[1].forwarding: "snat" at layer 4 is not supported yet (use direct-routing or tunnel, or layer 7 for SNAT)`,
			`t.yaml:19: virtual_services[2].forwarding: "direct_routing" is not a forwarding method (did you mean "direct-routing"?)`,
			`t.yaml:25: virtual_services[3].forwarding: layer 7 always uses snat (direct-routing is layer 4)`,
			`t.yaml:27: virtual_services[4]: layer is required: 4 (direct routing) or 7 (SNAT proxy)`,
		}},
		{"protocol", head + `  - name: a
    address: 192.0.2.10
    ports: 80
    layer: 4
    protocol: sctp
    real_servers: [{address: 192.0.2.21}]
  - name: b
    address: 192.0.2.11
    ports: 80
    layer: 7
    protocol: udp
    real_servers: [{address: 192.0.2.21}]
`, []string{
			`t.yaml:8: virtual_services[0].protocol: "sctp" is not one of tcp, udp, tcp+udp`,
			`t.yaml:14: virtual_services[1].protocol: udp: layer 7 proxies TCP only (use layer 4 for UDP)`,
		}},
		{"same vip proto port", head + l7 + `  - name: other
    address: 192.0.2.10
    ports: "443,8000-8100"
    layer: 4
    protocol: udp
    real_servers: [{address: 192.0.2.21}]
  - name: third
    address: 192.0.2.10
    ports: "443,8000-8100"
    layer: 4
    protocol: tcp
    real_servers: [{address: 192.0.2.21}]
`, []string{
			`t.yaml:17: virtual_services[2]: 192.0.2.10 tcp port 8080 is already claimed by virtual service "web" (line 4)`,
		}},
		{"layer 4 and layer 7 on one vip and protocol", head + l7 + `  - name: other
    address: 192.0.2.10
    ports: "1935"
    layer: 4
    real_servers: [{address: 192.0.2.21}]
`, []string{
			`t.yaml:11: virtual_services[1]: 192.0.2.10 tcp is also used by virtual service "web" (line 4), and one of them is layer 4: ` +
				`IP fragments carry no port, so they could not be told apart; give the layer-4 service an address of its own`,
		}},
		{"two layer-4 services on one vip and protocol", head + l4 + `  - name: other
    address: 192.0.2.11
    ports: "8000"
    layer: 4
    protocol: tcp+udp
    real_servers: [{address: 192.0.2.21}]
`, []string{
			`t.yaml:11: virtual_services[1]: 192.0.2.11 tcp is also used by virtual service "media" (line 4), and one of them is layer 4: ` +
				`IP fragments carry no port, so they could not be told apart; give the layer-4 service an address of its own`,
		}},
		{"same vip other protocol ok", head + l7 + `  - name: other
    address: 192.0.2.10
    ports: "1935,8080"
    layer: 4
    protocol: udp
    real_servers: [{address: 192.0.2.21}]
`, nil},
		{"duplicate names", head + l7 + l7 + l4 + `  - name: x
    address: 192.0.2.12
    ports: 80
    layer: 7
    real_servers:
      - { address: 192.0.2.21 }
      - { address: 192.0.2.21, port: 81 }
      - { name: "192.0.2.21", address: 192.0.2.22 }
      - { name: "bad name", address: 192.0.2.23 }
`, []string{
			`t.yaml:11: virtual_services[1]: service name "web" is already used on line 4`,
			`t.yaml:11: virtual_services[1]: 192.0.2.10 tcp port 8080 is already claimed by virtual service "web" (line 4)`,
			`t.yaml:31: virtual_services[3].real_servers[1]: real server name "192.0.2.21" is already used on line 30`,
			`t.yaml:32: virtual_services[3].real_servers[2]: real server name "192.0.2.21" is already used on line 30`,
			`t.yaml:33: virtual_services[3].real_servers[3].name: "bad name": use letters, digits, _ . - (at most 64; it appears in API paths)`,
		}},
		{"addresses", head + `  - name: a
    address: 10.0.0.1:80
    ports: 80
    layer: 4
    real_servers:
      - { address: 0.0.0.0 }
      - { address: 224.0.0.1 }
      - { address: "::ffff:10.0.0.2" }
      - { address: "fe80::1%eth0" }
      - { address: 255.255.255.255 }
      - { address: 127.0.0.1 }
      - { address: host.example }
      - { name: z }
  - name: b
    address: 10.0.0.2
    ports: 80
    layer: 4
    real_servers:
      - { address: 10.0.0.2 }
`, []string{
			`t.yaml:5: virtual_services[0].address: "10.0.0.1:80": give the address without a port`,
			`t.yaml:9: virtual_services[0].real_servers[0].address: 0.0.0.0 is the unspecified address, not a host`,
			`t.yaml:10: virtual_services[0].real_servers[1].address: 224.0.0.1 is a multicast address`,
			`t.yaml:11: virtual_services[0].real_servers[2].address: ::ffff:10.0.0.2 is an IPv4-mapped IPv6 address (write 10.0.0.2)`,
			`t.yaml:12: virtual_services[0].real_servers[3].address: fe80::1%eth0: an address with a zone is not supported`,
			`t.yaml:13: virtual_services[0].real_servers[4].address: 255.255.255.255 is the broadcast address`,
			`t.yaml:14: virtual_services[0].real_servers[5].address: 127.0.0.1 is a loopback address; direct routing needs a server on node.interface's network`,
			`t.yaml:15: virtual_services[0].real_servers[6].address: "host.example" is not an IP address`,
			`t.yaml:16: virtual_services[0].real_servers[7]: address is required`,
			`t.yaml:22: virtual_services[1].real_servers[0]: 10.0.0.2 is the service's own address (a forwarding loop)`,
		}},
		{"mixed families", head + `  - name: a
    address: 2001:db8::10
    ports: 80
    layer: 7
    source_address: 192.0.2.1
    fallback: { address: 192.0.2.9 }
    real_servers:
      - { address: "2001:db8::21" }
      - { address: 192.0.2.21 }
`, []string{
			`t.yaml:8: virtual_services[0].source_address: 192.0.2.1 is IPv4 but the service address 2001:db8::10 is IPv6 (one family per service)`,
			`t.yaml:9: virtual_services[0].fallback.address: 192.0.2.9 is IPv4 but the service address 2001:db8::10 is IPv6 (one family per service)`,
			`t.yaml:12: virtual_services[0].real_servers[1].address: 192.0.2.21 is IPv4 but the service address 2001:db8::10 is IPv6 (one family per service)`,
		}},
		{"weights and l7-only fields at l4", svc(`    connect_timeout: 1s
    proxy_protocol: v2
    fallback: { address: 192.0.2.30, port: 8080 }
    real_servers:
      - { address: 192.0.2.21, weight: -1 }
      - { address: 192.0.2.22, weight: 65536 }
      - { address: 192.0.2.23, weight: 0, max_connections: 10 }
      - { address: 192.0.2.24, weight: 65535, port: 8080 }
`), []string{
			`t.yaml:8: virtual_services[0].connect_timeout: applies to layer 7 only`,
			`t.yaml:9: virtual_services[0].proxy_protocol: applies to layer 7 only`,
			`t.yaml:10: virtual_services[0].fallback.port: port translation is not possible in direct routing (remove port: the fallback answers on the client's port)`,
			`t.yaml:12: virtual_services[0].real_servers[0].weight: -1 is out of range 0..65535`,
			`t.yaml:13: virtual_services[0].real_servers[1].weight: 65536 is out of range 0..65535`,
			`t.yaml:14: virtual_services[0].real_servers[2].max_connections: applies to layer 7 only (direct routing does not see connections end)`,
			`t.yaml:15: virtual_services[0].real_servers[3].port: port translation is not possible in direct routing (remove port: the server answers on the port the client used)`,
		}},
		{"health check", svc(`    health_check:
      type: http_get
      interval: 5
      timeout: 1y
      rise: 0
      fall: 1001
      jitter: -1s
    real_servers: [{address: 192.0.2.21}]
`), []string{
			`t.yaml:9: virtual_services[0].health_check.type: "http_get" is not one of https-get, http-get, tcp-connect, rtmp, rtsp, udp, srt, none (did you mean "http-get"?)`,
			`t.yaml:10: virtual_services[0].health_check.interval: "5" has no unit (write e.g. 5s or 5ms)`,
			`t.yaml:11: virtual_services[0].health_check.timeout: "1y" is not a duration (write e.g. 300ms, 5s, 30m, 1h)`,
			`t.yaml:12: virtual_services[0].health_check.rise: 0 is out of range 1..1000`,
			`t.yaml:13: virtual_services[0].health_check.fall: 1001 is out of range 1..1000`,
			`t.yaml:14: virtual_services[0].health_check.jitter: -1s is out of range 0s..24h0m0s`,
		}},
		{"health check timing and type fields", svc(`    health_check:
      type: tcp-connect
      path: /x
      interval: 1s
      timeout: 1s
      jitter: 2s
    real_servers: [{address: 192.0.2.21}]
`), []string{
			`t.yaml:10: virtual_services[0].health_check.path: has no effect with type tcp-connect`,
			`t.yaml:12: virtual_services[0].health_check.timeout: 1s must be less than the interval 1s`,
			`t.yaml:13: virtual_services[0].health_check.jitter: 2s must be less than the interval 1s`,
		}},
		{"health check none with fields, http with tls", svc(`    health_check: { type: none, port: 80 }
    real_servers: [{address: 192.0.2.21}]
  - name: t
    address: 192.0.2.11
    ports: 80
    layer: 4
    health_check: { type: http-get, sni: x, expect_status: 42, path: "/a b" }
    real_servers: [{address: 192.0.2.21}]
`), []string{
			`t.yaml:8: virtual_services[0].health_check.port: has no effect with type none`,
			`t.yaml:14: virtual_services[1].health_check.sni: has no effect with type http-get`,
			`t.yaml:14: virtual_services[1].health_check.expect_status: 42 is not an HTTP status (100..599, or 0 for any 2xx)`,
			`t.yaml:14: virtual_services[1].health_check.path: "/a b" must start with / and contain no white space`,
		}},
		{"persistence", svc(`    persistence: { mode: sourceip, timeout: 0s, capacity: 0 }
    real_servers: [{address: 192.0.2.21}]
  - name: t
    address: 192.0.2.11
    ports: 80
    layer: 4
    persistence: { timeout: 5m }
    real_servers: [{address: 192.0.2.21}]
`), []string{
			`t.yaml:8: virtual_services[0].persistence.mode: "sourceip" is not one of source-ip, none (did you mean "source-ip"?)`,
			`t.yaml:8: virtual_services[0].persistence.timeout: 0s is out of range 1s..720h0m0s`,
			`t.yaml:8: virtual_services[0].persistence.capacity: 0 is out of range 1..67108864`,
			`t.yaml:14: virtual_services[1].persistence.timeout: has no effect with mode none (set mode: source-ip)`,
		}},
		{"maglev", svc(`    maglev_size: 4
    real_servers: [{address: 192.0.2.21}, {address: 192.0.2.22}, {address: 192.0.2.23}]
  - name: t
    address: 192.0.2.11
    ports: 80
    layer: 4
    maglev_size: 16777259
    real_servers: [{address: 192.0.2.21}]
`), []string{
			`t.yaml:8: virtual_services[0].maglev_size: 4 is not a prime (the Maglev table size must be; e.g. 5)`,
			`t.yaml:8: virtual_services[0].maglev_size: 4 is too small for 3 real servers (a prime of at least 6)`,
			`t.yaml:14: virtual_services[1].maglev_size: 16777259 is out of range 2..16777213`,
		}},
		{"no real servers but fallback ok", svc("    fallback: { address: 192.0.2.30 }\n"), nil},
		{"empty real servers", svc("    real_servers: []\n"), []string{
			`t.yaml:8: virtual_services[0].real_servers: none given (and no fallback)`,
		}},
		{"wrong kinds", svc(`    real_servers: { a: 1 }
    persistence: source-ip
    health_check: [https-get]
`) + "    name: [x]\n", []string{
			`t.yaml:8: virtual_services[0].real_servers: want a list (lines starting with -), got a mapping`,
			`t.yaml:9: virtual_services[0].persistence: want a mapping (key: value lines), got "source-ip"`,
			`t.yaml:10: virtual_services[0].health_check: want a mapping (key: value lines), got a list`,
			`t.yaml:11: virtual_services[0]: key "name" given twice (first on line 4)`,
		}},
		{"api", "node: {interface: eth0}\napi:\n  listen: 9443\n  tls_cert: /c.pem\n  users:\n    - { name: 'a:b', password_hash: plain }\n    - { name: x, password_hash: \"$1$abc\" }\n    - { name: x }\nvirtual_services:\n" + l7, []string{
			`t.yaml:3: api.listen: "9443" is not host:port (e.g. 192.168.94.2:9443, or :9443 for this node's own address)`,
			`t.yaml:4: api.tls_cert is given but api.tls_key is not (give both, or neither for a self-signed certificate)`,
			`t.yaml:6: api.users[0].name: "a:b": a user name must be non-empty, without colon or white space`,
			`t.yaml:6: api.users[0].password_hash: not a bcrypt hash: it must start with $2a$, $2b$ or $2y$ (make one with ` + "`medialb passwd`)",
			`t.yaml:7: api.users[1].password_hash: not a bcrypt hash: it must start with $2a$, $2b$ or $2y$ (make one with ` + "`medialb passwd`)",
			`t.yaml:8: api.users[2]: password_hash is required (make one with ` + "`medialb passwd`)",
			`t.yaml:8: api.users[2].name: user "x" is already defined on line 7`,
		}},
		{"api no users, port clash", "node: {interface: eth0}\napi:\n  listen: :8443\nvirtual_services:\n" + l7, []string{
			"t.yaml:3: api.users: none given, nobody could log in (add one with a hash from `medialb passwd`)",
			`t.yaml:3: api.listen: port 8443 is also a port of virtual service "web" (line 5)`,
		}},
		{"ha", "node: {interface: eth0}\nha:\n  peer: 192.0.2.10\n  priority: 0\n  router_id: 256\n  advert_interval: 15ms\n  secret: '  '\n  preempt: yes\n  sync_port: 0\nvirtual_services:\n" + l7, []string{
			`t.yaml:3: ha.peer: 192.0.2.10 is the address of virtual service "web" (line 11); give the other node's own address`,
			`t.yaml:4: ha.priority: 0 is out of range 1..254`,
			`t.yaml:5: ha.router_id: 256 is out of range 1..255`,
			`t.yaml:6: ha.advert_interval: 15ms is not a multiple of 10ms (VRRP counts in centiseconds)`,
			`t.yaml:7: ha.secret: must not be empty`,
			`t.yaml:8: ha.preempt: want true or false, got "yes"`,
			`t.yaml:9: ha.sync_port: 0 is out of range 1..65535`,
		}},
		{"api on a VIP", "node: {interface: eth0}\napi:\n  listen: 192.0.2.11:9443\n  users: [{name: a, password_hash: \"" + hash + "\"}]\nvirtual_services:\n" + l7 + l4, []string{
			`t.yaml:3: api.listen: 192.0.2.11 is the address of virtual service "media" (line 13); the API must not answer on a VIP: give this node's own address, or leave api.listen out`,
		}},
		{"api on every address", "node: {interface: eth0}\napi:\n  listen: '[::]:9443'\n  users: [{name: a, password_hash: \"" + hash + "\"}]\nvirtual_services:\n" + l7, []string{
			`t.yaml:3: api.listen: :: listens on every address of the node, the VIPs too; give this node's own address, or leave api.listen out (this node's address on node.interface, port 9443)`,
		}},
		{"sync port of api and layer 7", "node: {interface: eth0}\napi:\n  listen: 192.0.2.2:8443\n  users: [{name: a, password_hash: \"" + hash + "\"}]\nha: {peer: 192.0.2.3, priority: 100, router_id: 1, secret: 0123456789abcdef, sync_port: 8443}\nvirtual_services:\n" + l7, []string{
			`t.yaml:3: api.listen: port 8443 is also ha.sync_port (the pair's sync channel); give one of them another port`,
			`t.yaml:7: virtual_services[0]: port 8443 is also ha.sync_port (the pair's sync channel); give ha.sync_port another port`,
		}},
		{"layer-7 limits", svc(`    real_servers: [{address: 192.0.2.21}]
    max_connections_per_source: -1
  - name: many
    address: 192.0.2.12
    ports: "8000-8064"
    layer: 7
    max_connections_per_source: -1
    real_servers: [{address: 192.0.2.21}]
`), []string{
			`t.yaml:9: virtual_services[0].max_connections_per_source: applies to layer 7 only`,
			`t.yaml:12: virtual_services[1].ports: 65 ports at layer 7, at most 64: each is a listening socket of its own (use layer 4 for port ranges)`,
			`t.yaml:14: virtual_services[1].max_connections_per_source: -1 is out of range 0..2147483647`,
		}},
		{"ha secret too short", "node: {interface: eth0}\nha:\n  peer: 192.0.2.3\n  priority: 100\n  router_id: 1\n  secret: 0123456789abcde\nvirtual_services:\n" + l7, []string{
			"t.yaml:6: ha.secret: 15 bytes, at least 16 wanted (it is all that authenticates the pair's traffic; make one with `medialb passwd --secret`)",
		}},
		{"ha required fields", "node: {interface: eth0}\nha:\n  preempt: true\nvirtual_services:\n" + l7, []string{
			`t.yaml:3: ha.peer is required (the other node's address on node.interface)`,
			`t.yaml:3: ha.priority is required (1..254; the primary gets the higher one)`,
			`t.yaml:3: ha.router_id is required (1..255, the same on both nodes)`,
			`t.yaml:3: ha.secret is required (the same on both nodes; it authenticates their traffic)`,
		}},
		{"alias cycle in merge", svc("    health_check: &a { <<: [*a, *a] }\n    real_servers: [{address: 192.0.2.21}]\n"), []string{
			"t.yaml:8: virtual_services[0].health_check: << merges a mapping into itself",
		}},
		{"deep merge chain", "x-1: &m1 " + strings.Repeat("{<<: ", maxDepth+1) + "{rise: 1}" + strings.Repeat("}", maxDepth+1) + "\n" +
			svc("    health_check: *m1\n    real_servers: [{address: 192.0.2.21}]\n"), []string{
			"t.yaml:1: virtual_services[0].health_check: merge keys nested too deeply",
		}},
		{"merge chain within limit", "x-1: &m1 " + strings.Repeat("{<<: ", maxDepth) + "{rise: 1}" + strings.Repeat("}", maxDepth) + "\n" +
			svc("    health_check: *m1\n    real_servers: [{address: 192.0.2.21}]\n"), nil},
		{"merge key not a mapping", svc("    health_check: { <<: 5 }\n    real_servers: [{address: 192.0.2.21}]\n"), []string{
			"t.yaml:8: virtual_services[0].health_check: << must merge a mapping, got the number 5",
		}},
		{"x- keys hold anchors", "x-rs: &rs [{address: 192.0.2.21}]\n" + svc("    real_servers: *rs\n"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("t.yaml", []byte(tt.input))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got:\n%v", err)
				}
				if cfg == nil {
					t.Fatal("nil config without error")
				}
				return
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want Errors, got %T %v", err, err)
			}
			if got := errs.Lines(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if cfg != nil {
				t.Error("config returned with errors")
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(head+l7+l4+`  - name: udp
    address: 192.0.2.12
    ports: 5000
    layer: 4
    protocol: udp
    persistence: { mode: source-ip }
    real_servers: [{address: 192.0.2.21}]
  - name: ported
    address: 192.0.2.13
    ports: [9000, 9001]
    layer: 7
    health_check: { type: http-get, interval: 2s }
    real_servers: [{address: 192.0.2.21, port: 19000}, {address: 192.0.2.22}]
`))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if cfg.Node.Name != host || cfg.Node.HashSeed != DefaultHashSeed || cfg.Node.StateDir != DefaultStateDir ||
		cfg.Node.XDPMode != XDPAuto || cfg.Node.ZeroCopy != ZeroCopyAuto || cfg.Node.Queues != 0 || cfg.Node.XDPFastPath != FastPathAuto {
		t.Errorf("node defaults: %+v", cfg.Node)
	}
	if cfg.API.Listen != "" || cfg.HA != nil {
		t.Errorf("absent api/ha: %+v %+v", cfg.API, cfg.HA)
	}
	web, media, udp, ported := cfg.Service("web"), cfg.Service("media"), cfg.Service("udp"), cfg.Service("ported")
	if web == nil || media == nil || udp == nil || ported == nil || cfg.Service("nope") != nil {
		t.Fatal("Service lookup")
	}
	wantWeb := HealthCheck{Type: CheckTCPConnect, Port: 8080, Interval: 5 * time.Second, Timeout: 3 * time.Second,
		Rise: 2, Fall: 3, Jitter: 500 * time.Millisecond}
	if web.HealthCheck != wantWeb {
		t.Errorf("web health check:\n got %+v\nwant %+v", web.HealthCheck, wantWeb)
	}
	if web.Layer != Layer7 || web.Forwarding != SNAT || web.Protocol != TCP || web.MaglevSize != DefaultMaglevSize ||
		web.Persistence != (Persistence{Mode: PersistNone}) || web.ConnectTimeout != 5*time.Second ||
		web.ClientTimeout != 10*time.Minute || web.ServerTimeout != 10*time.Minute || web.ProxyProtocol != ProxyNone ||
		web.SourceAddress.IsValid() || web.Fallback != nil || web.Line != 4 {
		t.Errorf("web: %+v", web)
	}
	if rs := web.RealServer("b"); rs == nil || rs.Weight != 100 || rs.Port != 0 || rs.HealthPort != 8080 || rs.Line != 10 ||
		rs.Address != netip.MustParseAddr("192.0.2.22") {
		t.Errorf("web/b: %+v", rs)
	}
	if media.Forwarding != DirectRouting || media.Protocol != TCPAndUDP || media.Ports.String() != "1935,554,50000-65535" ||
		media.ConnectTimeout != 0 || media.ClientTimeout != 0 {
		t.Errorf("media: %+v", media)
	}
	if udp.HealthCheck.Type != CheckNone || udp.HealthCheck.Port != 0 ||
		udp.Persistence != (Persistence{PersistSourceIP, DefaultPersistenceTimeout, DefaultPersistenceCapacity}) ||
		udp.RealServers[0].Name != "192.0.2.21" || udp.RealServers[0].HealthPort != 0 {
		t.Errorf("udp: %+v", udp)
	}
	if hc := ported.HealthCheck; hc.Path != DefaultCheckPath || hc.Port != 9000 || hc.Timeout != time.Second || hc.Jitter != 200*time.Millisecond ||
		ported.RealServers[0].HealthPort != 19000 || ported.RealServers[1].HealthPort != 9000 {
		t.Errorf("ported: %+v", ported)
	}
	if got, want := cfg.Summary(), "t.yaml: ok: 4 virtual services (2 layer-4, 2 layer-7), 6 real servers, 15543 ports"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

// TestTestdata checks testdata/*.yaml: a file with a NAME.golden beside it must
// fail with exactly those lines, any other must be valid.
func TestTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			want, gerr := os.ReadFile(golden)
			_, err := Load(f)
			got := ""
			if err != nil {
				got = err.Error() + "\n"
			}
			if *update && gerr == nil {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if gerr != nil {
				if err != nil {
					t.Fatalf("want valid, got:\n%v", err)
				}
				return
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant (%s):\n%s", got, golden, want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml")
	if got, want := err.Error(), "testdata/does-not-exist.yaml: read configuration: no such file or directory"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestIPv6Testdata(t *testing.T) {
	cfg, err := Load("testdata/ipv6.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, media := cfg.Service("mgmt6"), cfg.Service("media6")
	if m.HealthCheck.Type != CheckHTTPSGet || m.HealthCheck.Expect != "Healthy" || m.HealthCheck.Port != 8443 ||
		m.ProxyProtocol != ProxyV2 || m.SourceAddress != netip.MustParseAddr("2001:db8::2") ||
		m.Fallback == nil || m.Fallback.Port != 8080 || m.Fallback.Name != "fallback" || m.MaxConnections != 10000 {
		t.Errorf("mgmt6: %+v", m)
	}
	if m.RealServers[1].Name != "2001:db8::106" || m.RealServers[0].MaxConnections != 500 || m.RealServers[0].HealthPort != 8443 {
		t.Errorf("mgmt6 real servers: %+v", m.RealServers)
	}
	// The merge key kept the anchor's fields and overrode the interval.
	if hc := media.HealthCheck; hc.Type != CheckHTTPSGet || hc.Interval != time.Second || hc.Timeout != 500*time.Millisecond || hc.Port != 8443 {
		t.Errorf("media6 health check: %+v", hc)
	}
	if media.Protocol != UDP || media.MaglevSize != 251 || media.Persistence.Capacity != 4096 || media.RealServers[0].Weight != 0 ||
		media.RealServers[1].Weight != 65535 || !media.Ports.Contains(65535) || media.Ports.Contains(1936) {
		t.Errorf("media6: %+v", media)
	}
	if cfg.Node.HashSeed != 0x1234 || cfg.Node.ZeroCopy != ZeroCopyOff || cfg.Node.XDPMode != XDPNative || cfg.Node.Queues != 4 || cfg.Node.XDPFastPath != FastPathOff {
		t.Errorf("node: %+v", cfg.Node)
	}
	if h := cfg.HA; h == nil || !h.Preempt || h.Priority != 200 || h.RouterID != 7 || h.AdvertInterval != time.Second || h.SyncPort != 7778 {
		t.Errorf("ha: %+v", cfg.HA)
	}
}
