package alerts

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/medialb/medialb/config"
)

// syslogSender sends each event as one RFC 5424 message.
type syslogSender struct {
	cfg  config.SyslogAlerts
	host string
	conn net.Conn // TCP: kept open, dialled again after an error
}

// format returns the RFC 5424 message of ev:
// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG
func (s *syslogSender) format(ev Event, node string) string {
	pri := s.cfg.Facility*8 + ev.Severity
	host := s.host
	if host == "" {
		host = "-"
	}
	sd := "-"
	if node != "" {
		sd = `[medialb@32473 node="` + strings.NewReplacer(`"`, `\"`, `\`, `\\`, `]`, `\]`).Replace(node) + `"]`
	}
	return fmt.Sprintf("<%d>1 %s %s medialb %d %s %s %s", pri, ev.Time.UTC().Format(time.RFC3339Nano), host, os.Getpid(), ev.MsgID, sd, ev.Text)
}

func (s *syslogSender) send(ev Event, node string) error {
	msg := s.format(ev, node)
	if s.cfg.Protocol == "tcp" {
		if s.conn == nil {
			c, err := net.DialTimeout("tcp", s.cfg.Address, 5*time.Second)
			if err != nil {
				return fmt.Errorf("syslog to %s: %w", s.cfg.Address, err)
			}
			s.conn = c
		}
		s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(s.conn, "%d %s", len(msg), msg); err != nil { // RFC 6587 octet counting
			s.conn.Close()
			s.conn = nil
			return fmt.Errorf("syslog to %s: %w", s.cfg.Address, err)
		}
		return nil
	}
	c, err := net.Dial("udp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("syslog to %s: %w", s.cfg.Address, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("syslog to %s: %w", s.cfg.Address, err)
	}
	return nil
}

func (s *syslogSender) close() {
	if s.conn != nil {
		s.conn.Close()
	}
}
