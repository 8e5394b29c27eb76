package e2e

import "strings"

// service is one virtual service of a test configuration, as flow-style YAML
// values. The constructors below are the lab's services as the guide sets them
// up; a test states only what differs, e.g. traffic().check(httpsCheck).
type service struct {
	name, address, ports string
	layer                string
	forwarding           string // left out when empty
	protocol             string
	persistence          string // left out when empty
	healthCheck          string
	fallback             string // left out when empty
	feedback             string // left out when empty
	extraYAML            string // further keys, as indented YAML lines
	servers              []string
}

// Health checks the tests share.
const (
	tcpCheck   = `{ type: tcp-connect, port: 8443, interval: 1s, timeout: 500ms }`
	httpsCheck = `{ type: https-get, port: 8443, path: /admin/status, expect: Healthy, interval: 1s, timeout: 500ms }`
)

// management is the guide's Harmonic_Management: layer-7 SNAT proxy on 8080
// and 8443, source-IP persistence, HM1 and HM2.
func management() service {
	return service{name: "Harmonic_Management", address: "192.168.94.100", ports: "8080,8443", layer: "7",
		protocol: "tcp", persistence: "{ mode: source-ip, timeout: 30m }", healthCheck: tcpCheck,
		servers: []string{"{ name: HM1, address: 192.168.94.105 }", "{ name: HM2, address: 192.168.94.106 }"}}
}

// management6 is management's IPv6 twin.
func management6() service {
	s := management()
	s.name, s.address = "Harmonic_Management6", "fd94::100"
	s.servers = []string{`{ name: HM1, address: "fd94::105" }`, `{ name: HM2, address: "fd94::106" }`}
	return s
}

// traffic is the guide's Harmonic_Traffic: layer-4 direct routing, TCP and UDP
// on 1935, 554 and 50000-65535, source-IP persistence, HT1 and HT2.
func traffic() service {
	return service{name: "Harmonic_Traffic", address: "192.168.94.110", ports: "1935,554,50000-65535", layer: "4",
		forwarding: "direct-routing", protocol: "tcp+udp", persistence: "{ mode: source-ip, timeout: 300s }",
		healthCheck: tcpCheck,
		servers:     []string{"{ name: HT1, address: 192.168.94.115 }", "{ name: HT2, address: 192.168.94.116 }"}}
}

// traffic6 is traffic's IPv6 twin (forwarding left to its default).
func traffic6() service {
	s := traffic()
	s.name, s.address, s.forwarding = "Harmonic_Traffic6", "fd94::110", ""
	s.servers = []string{`{ name: HT1, address: "fd94::115" }`, `{ name: HT2, address: "fd94::116" }`}
	return s
}

func (s service) check(hc string) service          { s.healthCheck = hc; return s }
func (s service) persist(p string) service         { s.persistence = p; return s }
func (s service) withFallback(fb string) service   { s.fallback = fb; return s }
func (s service) withServers(rs ...string) service { s.servers = rs; return s }

// yaml renders s as an item of virtual_services.
func (s service) yaml() string {
	var b strings.Builder
	line := func(key, val string) {
		if val != "" {
			b.WriteString("    " + key + ": " + val + "\n")
		}
	}
	b.WriteString("  - name: " + s.name + "\n")
	line("address", s.address)
	line("ports", `"`+s.ports+`"`)
	line("layer", s.layer)
	line("forwarding", s.forwarding)
	line("protocol", s.protocol)
	line("persistence", s.persistence)
	line("health_check", s.healthCheck)
	line("fallback", s.fallback)
	line("feedback", s.feedback)
	b.WriteString(s.extraYAML)
	b.WriteString("    real_servers:\n")
	for _, r := range s.servers {
		b.WriteString("      - " + r + "\n")
	}
	return b.String()
}

// services renders the virtual_services section.
func services(svcs ...service) string {
	var b strings.Builder
	b.WriteString("\nvirtual_services:\n")
	for _, s := range svcs {
		b.WriteString(s.yaml())
	}
	return b.String()
}

// config is a one-node configuration template (see env.writeConfig): the lab's
// node and api sections and svcs.
func config(svcs ...service) string { return nodeSection + apiSection + services(svcs...) }
