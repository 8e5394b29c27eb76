package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// DefaultRTMPApplication is the application an rtmp check connects to: the
// one nginx-rtmp setups and VOS ingest commonly use.
const DefaultRTMPApplication = "live"

// HealthMode says how several health checks of a service combine.
type HealthMode string

// Health modes.
const (
	HealthAll HealthMode = "all" // every check must pass
	HealthAny HealthMode = "any" // one passing check is enough
)

// timingKeys are the health-check keys that only a list's first check may give.
var timingKeys = []string{"interval", "timeout", "rise", "fall", "jitter"}

// mediaRequest reads what the media-protocol checks send: application
// (rtmp) and send (udp).
func (p *parser) mediaRequest(f fields, path string, hc *HealthCheck) {
	if v := f.get("application"); v != nil {
		if s, ok := p.str(v, path+".application"); ok {
			if s == "" || !nameRE.MatchString(s) {
				p.errorf(v, "%s.application: %q is not an RTMP application name (letters, digits, _ . -)", path, s)
			}
			hc.Application = s
		}
	}
	if hc.Type == CheckRTMP && hc.Application == "" {
		hc.Application = DefaultRTMPApplication
	}
	if v := f.get("send"); v != nil {
		hc.Send, _ = p.str(v, path+".send")
	}
	if hc.Type == CheckUDP && hc.Send == "" && !f.has("send") {
		p.errorf(f.node, "%s: send is required for type udp (the datagram the server answers)", path)
	}
}

// healthChecks reads a service's health_checks list and health_mode: the
// first check becomes HealthCheck (with its timing and the real servers'
// health ports), the others MoreChecks.
func (p *parser) healthChecks(f fields, path string, s *Service) {
	s.HealthMode = HealthAll
	if v := f.get("health_mode"); v != nil {
		if m, ok := p.oneOf(v, path+".health_mode", []string{string(HealthAll), string(HealthAny)}); ok {
			s.HealthMode = HealthMode(m)
		}
	}
	list := f.get("health_checks")
	if list == nil {
		if f.has("health_mode") {
			p.errorf(f.at("health_mode"), "%s.health_mode: has no effect without health_checks", path)
		}
		s.HealthCheck = p.healthCheck(f.get("health_check"), path+".health_check", s)
		return
	}
	if f.has("health_check") {
		p.errorf(f.at("health_check"), "%s: give health_check or health_checks, not both", path)
	}
	items, _ := p.sequence(list, path+".health_checks")
	if len(items) == 0 {
		p.errorf(f.at("health_checks"), "%s.health_checks: none given (leave it out for the default check)", path)
		s.HealthCheck = p.healthCheck(nil, path+".health_check", s)
		return
	}
	for i, n := range items {
		ipath := fmt.Sprintf("%s.health_checks[%d]", path, i)
		if i == 0 {
			s.HealthCheck = p.healthCheck(n, ipath, s)
			if s.HealthCheck.Type == CheckNone {
				p.errorf(n, "%s: type none in a list of checks (leave health_checks out instead)", ipath)
			}
			continue
		}
		// A further check runs on the first one's timing and its own port
		// (default: the service's first port); it leaves the servers' health
		// ports to the first.
		alone := Service{Ports: s.Ports, Protocol: s.Protocol}
		hc := p.healthCheck(n, ipath, &alone)
		if hc.Type == CheckNone {
			p.errorf(n, "%s: type none in a list of checks (leave it out)", ipath)
		}
		if n.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(n.Content); j += 2 {
				if contains(timingKeys, n.Content[j].Value) {
					p.errorf(n.Content[j], "%s.%s: only the first check of health_checks sets the timing (it applies to all)", ipath, n.Content[j].Value)
				}
			}
		}
		first := s.HealthCheck
		hc.Interval, hc.Timeout, hc.Rise, hc.Fall, hc.Jitter = first.Interval, first.Timeout, first.Rise, first.Fall, first.Jitter
		s.MoreChecks = append(s.MoreChecks, hc)
	}
}
