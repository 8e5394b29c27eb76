package config

import (
	"fmt"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// The parser follows the file's own sections, one file each, with the keys
// a section knows next to the code that reads them:
//
//	sections.go          the top level and virtual_services
//	section_node.go      node
//	section_api.go       api, api.users
//	section_ha.go        ha
//	section_alerts.go    alerts (email, syslog)
//	section_bgp.go       bgp (peers, communities, MED) and its cross-checks
//	section_service.go   one virtual service: name, address, ports, layer,
//	                     forwarding, protocol, maglev_size
//	section_servers.go   real_servers, fallback
//	section_persist.go   persistence
//	section_health.go    health_check
//	section_layer7.go    the layer-7 proxy's options
//	crosschecks.go       problems between sections

// topKeys are the keys of the file's top level.
var topKeys = []string{"node", "api", "ha", "virtual_services", "alerts", "bgp"}

const day = 24 * time.Hour

// topLevel names the file's top level in messages.
const topLevel = "top level"

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// config reads the whole file.
func (p *parser) config(root *yaml.Node, c *Config) {
	f, ok := p.mapping(root, topLevel, topKeys)
	if !ok {
		return
	}

	if n := f.get("node"); n != nil {
		p.node(n, &c.Node)
	} else {
		p.errorf(root, "node: missing (node.interface, the NIC that carries the VIPs, is required)")
	}
	if n := f.get("api"); n != nil {
		p.api(n, &c.API)
	}
	if n := f.get("ha"); n != nil {
		c.HA = p.ha(n)
	}
	if n := f.get("alerts"); n != nil {
		c.Alerts = p.alerts(n)
	}
	if n := f.get("bgp"); n != nil {
		c.BGP = p.bgp(n)
		p.bgpNode = n
	}
	p.localFile = p.file
	p.services(f, c)
	p.crossChecks(c)
}

// services reads the virtual_services of mapping f.
func (p *parser) services(f fields, c *Config) {
	// No virtual_services key at all is a node with nothing to balance yet (its
	// services come from the WebUI, or from its HA primary); an empty one is a
	// mistake.
	items, isList := p.sequence(f.get("virtual_services"), "virtual_services")
	if isList && len(items) == 0 && f.has("virtual_services") {
		p.errorf(f.at("virtual_services"), "virtual_services: none given (nothing to balance)")
	}
	for i, it := range items {
		c.Services = append(c.Services, p.service(it, fmt.Sprintf("virtual_services[%d]", i)))
	}
}
