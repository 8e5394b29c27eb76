package config

import (
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// healthKeys are the keys of a service's health_check; type comes first.
var healthKeys = []string{"type", "port", "path", "expect", "expect_status", "host", "sni", "tls_verify", "ca_file", "interval", "timeout", "rise", "fall", "jitter",
	"application", "send"}

// checkTypes are the health check types, as written.
var checkTypes = []string{string(CheckHTTPSGet), string(CheckHTTPGet), string(CheckTCPConnect), string(CheckRTMP), string(CheckRTSP), string(CheckUDP), string(CheckSRT), string(CheckNone)}

// notForType are the keys that mean nothing for a check type.
var notForType = map[CheckType][]string{
	CheckTCPConnect: {"path", "expect", "expect_status", "host", "sni", "tls_verify", "ca_file", "application", "send"},
	CheckHTTPGet:    {"sni", "tls_verify", "ca_file", "application", "send"},
	CheckHTTPSGet:   {"application", "send"},
	CheckRTMP:       {"path", "expect", "expect_status", "host", "sni", "tls_verify", "ca_file", "send"},
	CheckRTSP:       {"expect", "expect_status", "host", "sni", "tls_verify", "ca_file", "application", "send"},
	CheckUDP:        {"path", "expect_status", "host", "sni", "tls_verify", "ca_file", "application"},
	CheckSRT:        {"path", "expect", "expect_status", "host", "sni", "tls_verify", "ca_file", "application", "send"},
}

// healthCheck reads a service's health_check and sets the health-check port
// of each of its real servers.
func (p *parser) healthCheck(n *yaml.Node, path string, s *Service) HealthCheck {
	hc := HealthCheck{}
	f, ok := p.mapping(n, path, healthKeys)
	if !ok {
		return hc
	}
	if v := f.get("type"); v != nil {
		if t, ok := p.oneOf(v, path+".type", checkTypes); ok {
			hc.Type = CheckType(t)
		}
	} else if s.Protocol.Has(TCP) || s.Protocol == 0 {
		hc.Type = CheckTCPConnect
	} else {
		hc.Type = CheckNone
	}

	// Keys that mean nothing for the chosen type are mistakes, not noise.
	notFor := notForType[hc.Type]
	if hc.Type == CheckNone {
		notFor = healthKeys[1:]
	}
	for _, k := range notFor {
		if f.has(k) {
			p.errorf(f.at(k), "%s.%s: has no effect with type %s", path, k, hc.Type)
		}
	}

	p.healthRequest(f, path, &hc)
	p.mediaRequest(f, path, &hc)
	p.healthTiming(f, path, &hc)
	healthDefaults(f.has("port"), &hc, s)
	return hc
}

// healthRequest reads what a check sends and expects: port, path, expect,
// expect_status, host and the TLS keys.
func (p *parser) healthRequest(f fields, path string, hc *HealthCheck) {
	if v := f.get("port"); v != nil {
		if x, ok := p.integer(v, path+".port", 1, 65535); ok {
			hc.Port = uint16(x)
		}
	}
	if v := f.get("path"); v != nil {
		if s, ok := p.str(v, path+".path"); ok {
			if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, " \t\r\n") {
				p.errorf(v, "%s.path: %q must start with / and contain no white space", path, s)
			}
			hc.Path = s
		}
	}
	if v := f.get("expect"); v != nil {
		hc.Expect, _ = p.str(v, path+".expect")
	}
	if v := f.get("expect_status"); v != nil {
		if x, ok := p.integer(v, path+".expect_status", 0, 599); ok {
			if x != 0 && x < 100 {
				p.errorf(v, "%s.expect_status: %d is not an HTTP status (100..599, or 0 for any 2xx)", path, x)
			}
			hc.ExpectStatus = int(x)
		}
	}
	if v := f.get("host"); v != nil {
		if h, ok := p.str(v, path+".host"); ok {
			if h == "" || strings.ContainsAny(h, " \t\r\n/") {
				p.errorf(v, "%s.host: %q is not a host name", path, h)
			}
			hc.Host = h
		}
	}
	if v := f.get("sni"); v != nil {
		if h, ok := p.str(v, path+".sni"); ok {
			if h == "" || strings.ContainsAny(h, " \t\r\n/:") {
				p.errorf(v, "%s.sni: %q is not a server name", path, h)
			}
			hc.SNI = h
		}
	}
	if v := f.get("tls_verify"); v != nil {
		hc.TLSVerify, _ = p.boolean(v, path+".tls_verify")
	}
	if v := f.get("ca_file"); v != nil {
		hc.CAFile, _ = p.str(v, path+".ca_file")
		if hc.Type == CheckHTTPSGet && !hc.TLSVerify {
			p.errorf(v, "%s.ca_file: has no effect without tls_verify: true", path)
		}
	}
}

// healthTiming reads when a check runs and how many results change a
// server's state: interval, timeout, rise, fall and jitter.
func (p *parser) healthTiming(f fields, path string, hc *HealthCheck) {
	intervalOK, timeoutOK := true, true
	hc.Interval = DefaultCheckInterval
	if v := f.get("interval"); v != nil {
		hc.Interval, intervalOK = p.duration(v, path+".interval", 10*time.Millisecond, day)
	}
	if v := f.get("timeout"); v != nil {
		hc.Timeout, timeoutOK = p.duration(v, path+".timeout", time.Millisecond, day)
	} else if hc.Interval > DefaultCheckTimeout {
		hc.Timeout = DefaultCheckTimeout
	} else {
		hc.Timeout = hc.Interval / 2
	}
	if intervalOK && timeoutOK && f.has("timeout") && hc.Timeout >= hc.Interval && hc.Type != CheckNone {
		p.errorf(f.at("timeout"), "%s.timeout: %v must be less than the interval %v", path, hc.Timeout, hc.Interval)
	}
	hc.Rise, hc.Fall = DefaultCheckRise, DefaultCheckFall
	if v := f.get("rise"); v != nil {
		if x, ok := p.integer(v, path+".rise", 1, 1000); ok {
			hc.Rise = int(x)
		}
	}
	if v := f.get("fall"); v != nil {
		if x, ok := p.integer(v, path+".fall", 1, 1000); ok {
			hc.Fall = int(x)
		}
	}
	if v := f.get("jitter"); v != nil {
		if d, ok := p.duration(v, path+".jitter", 0, day); ok {
			if intervalOK && d >= hc.Interval {
				p.errorf(v, "%s.jitter: %v must be less than the interval %v", path, d, hc.Interval)
			}
			hc.Jitter = d
		}
	} else {
		hc.Jitter = hc.Interval / 10
	}
}

// healthDefaults fills in the defaults of a check's path and port, and the
// port each real server is checked on: the check's port when portGiven,
// else the server's own port, else the service's first port.
func healthDefaults(portGiven bool, hc *HealthCheck, s *Service) {
	if hc.Type == CheckHTTPGet || hc.Type == CheckHTTPSGet {
		if hc.Path == "" {
			hc.Path = DefaultCheckPath
		}
	}
	if hc.Type == CheckNone {
		hc.Port = 0
	} else {
		if hc.Port == 0 {
			hc.Port = s.Ports.First()
		}
		for i := range s.RealServers {
			rs := &s.RealServers[i]
			switch {
			case portGiven:
				rs.HealthPort = hc.Port
			case rs.Port != 0:
				rs.HealthPort = rs.Port
			default:
				rs.HealthPort = hc.Port
			}
		}
	}
}
