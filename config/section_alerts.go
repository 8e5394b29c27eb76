package config

import (
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultAlertBatch is how long email alerts are collected into one mail.
const DefaultAlertBatch = 30 * time.Second

// Alerts sends real-server and virtual-service state changes and HA failovers
// by email and to a remote syslog.
type Alerts struct {
	// Email is nil for no mail.
	Email *EmailAlerts
	// Syslog is nil for no syslog.
	Syslog *SyslogAlerts
}

// EmailAlerts sends batched alert mails through an SMTP server.
type EmailAlerts struct {
	// Server is host:port of the SMTP server (submission, usually port 587).
	Server string
	// StartTLS upgrades the connection with STARTTLS before authenticating.
	// Default true; the mail is not sent when the server does not offer it.
	StartTLS bool
	// TLSVerify checks the server's certificate. Default true.
	TLSVerify bool
	// Username and Password authenticate (AUTH PLAIN); empty: no authentication.
	Username, Password string
	// From is the sender address; To the recipients (at least one).
	From string
	To   []string
	// Batch collects the events of this long into one mail, so a flapping
	// server does not send a mail per change. Default DefaultAlertBatch.
	Batch time.Duration
}

// SyslogAlerts sends one RFC 5424 message per event to a remote syslog.
type SyslogAlerts struct {
	// Address is host:port of the receiver (port 514 usually).
	Address string
	// Protocol is "udp" (default) or "tcp" (octet-counted framing, RFC 6587).
	Protocol string
	// Facility is the syslog facility number, 0..23. Default 3 (daemon).
	Facility int
}

var (
	alertsKeys = []string{"email", "syslog"}
	emailKeys  = []string{"server", "starttls", "tls_verify", "username", "password", "from", "to", "batch"}
	syslogKeys = []string{"address", "protocol", "facility"}
)

// alerts reads the alerts section.
func (p *parser) alerts(n *yaml.Node) *Alerts {
	f, ok := p.mapping(n, "alerts", alertsKeys)
	if !ok {
		return nil
	}
	a := &Alerts{}
	if v := f.get("email"); v != nil {
		a.Email = p.emailAlerts(v)
	}
	if v := f.get("syslog"); v != nil {
		a.Syslog = p.syslogAlerts(v)
	}
	return a
}

func (p *parser) hostPort(n *yaml.Node, path, example string) string {
	s, ok := p.str(n, path)
	if !ok {
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if x, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || x < 1 || x > 65535 {
		p.errorf(n, "%s: %q is not host:port (e.g. %s)", path, s, example)
		return ""
	}
	return s
}

func (p *parser) emailAlerts(n *yaml.Node) *EmailAlerts {
	f, ok := p.mapping(n, "alerts.email", emailKeys)
	if !ok {
		return nil
	}
	e := &EmailAlerts{StartTLS: true, TLSVerify: true, Batch: DefaultAlertBatch}
	if v := f.get("server"); v != nil {
		e.Server = p.hostPort(v, "alerts.email.server", "smtp.example.com:587")
	} else {
		p.errorf(n, "alerts.email.server is required (host:port of the SMTP server, e.g. smtp.example.com:587)")
	}
	if v := f.get("starttls"); v != nil {
		e.StartTLS, _ = p.boolean(v, "alerts.email.starttls")
	}
	if v := f.get("tls_verify"); v != nil {
		e.TLSVerify, _ = p.boolean(v, "alerts.email.tls_verify")
	}
	if v := f.get("username"); v != nil {
		e.Username, _ = p.str(v, "alerts.email.username")
	}
	if v := f.get("password"); v != nil {
		e.Password, _ = p.str(v, "alerts.email.password")
	}
	if e.Username != "" && !e.StartTLS {
		p.errorf(f.at("username"), "alerts.email.username: authentication needs starttls: true (the password would cross the network in the clear)")
	}
	address := func(v *yaml.Node, path string) string {
		s, ok := p.str(v, path)
		if !ok {
			return ""
		}
		if _, err := mail.ParseAddress(s); err != nil {
			p.errorf(v, "%s: %q is not a mail address", path, s)
		}
		return s
	}
	if v := f.get("from"); v != nil {
		e.From = address(v, "alerts.email.from")
	} else {
		p.errorf(n, "alerts.email.from is required (the sender address)")
	}
	if v := f.get("to"); v != nil {
		items, _ := p.sequence(v, "alerts.email.to")
		for i, it := range items {
			e.To = append(e.To, address(it, "alerts.email.to["+strconv.Itoa(i)+"]"))
		}
		if len(items) == 0 && v.Kind == yaml.SequenceNode {
			p.errorf(v, "alerts.email.to: none given (at least one recipient)")
		}
	} else {
		p.errorf(n, "alerts.email.to is required (a list of recipients)")
	}
	if v := f.get("batch"); v != nil {
		e.Batch, _ = p.duration(v, "alerts.email.batch", 0, 24*time.Hour)
	}
	return e
}

func (p *parser) syslogAlerts(n *yaml.Node) *SyslogAlerts {
	f, ok := p.mapping(n, "alerts.syslog", syslogKeys)
	if !ok {
		return nil
	}
	s := &SyslogAlerts{Protocol: "udp", Facility: 3}
	if v := f.get("address"); v != nil {
		s.Address = p.hostPort(v, "alerts.syslog.address", "192.168.94.50:514")
	} else {
		p.errorf(n, "alerts.syslog.address is required (host:port of the syslog receiver)")
	}
	if v := f.get("protocol"); v != nil {
		if str, ok := p.oneOf(v, "alerts.syslog.protocol", []string{"udp", "tcp"}); ok {
			s.Protocol = strings.ToLower(str)
		}
	}
	if v := f.get("facility"); v != nil {
		if x, ok := p.integer(v, "alerts.syslog.facility", 0, 23); ok {
			s.Facility = int(x)
		}
	}
	return s
}
