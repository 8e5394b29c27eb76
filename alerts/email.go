package alerts

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"time"

	"github.com/medialb/medialb/config"
)

// maxPerMail bounds the events listed in one mail; the rest are counted.
const maxPerMail = 100

// mailText returns the message (headers and body) for a batch of events.
func mailText(cfg *config.EmailAlerts, node string, evs []Event, now time.Time) []byte {
	subject := fmt.Sprintf("medialb %s: %s", node, evs[0].Text)
	if len(evs) > 1 {
		subject = fmt.Sprintf("medialb %s: %d state changes, the first: %s", node, len(evs), evs[0].Text)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		cfg.From, strings.Join(cfg.To, ", "), strings.ReplaceAll(subject, "\n", " "), now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "State changes on load balancer %s:\r\n\r\n", node)
	for i, ev := range evs {
		if i == maxPerMail {
			fmt.Fprintf(&b, "... and %d more (see the Logs page)\r\n", len(evs)-maxPerMail)
			break
		}
		fmt.Fprintf(&b, "%s  %s\r\n", ev.Time.UTC().Format("2006-01-02 15:04:05 UTC"), ev.Text)
	}
	return b.Bytes()
}

// sendMail delivers msg through cfg.Server: STARTTLS when configured (refusing
// to go on without it), AUTH PLAIN when a username is set.
func sendMail(cfg *config.EmailAlerts, msg []byte) error {
	host, _, _ := net.SplitHostPort(cfg.Server)
	conn, err := net.DialTimeout("tcp", cfg.Server, 10*time.Second)
	if err != nil {
		return fmt.Errorf("mail to %s: %w", cfg.Server, err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("mail to %s: %w", cfg.Server, err)
	}
	defer c.Close()
	if cfg.StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("mail to %s: the server does not offer STARTTLS (alerts.email.starttls is true)", cfg.Server)
		}
		if err := c.StartTLS(&tls.Config{ServerName: host, InsecureSkipVerify: !cfg.TLSVerify, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("mail to %s: STARTTLS: %w", cfg.Server, err)
		}
	}
	if cfg.Username != "" {
		if err := c.Auth(plainAuth{cfg.Username, cfg.Password}); err != nil {
			return fmt.Errorf("mail to %s: log in as %s: %w", cfg.Server, cfg.Username, err)
		}
	}
	if err := c.Mail(cfg.From); err != nil {
		return fmt.Errorf("mail to %s: MAIL FROM %s: %w", cfg.Server, cfg.From, err)
	}
	for _, to := range cfg.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("mail to %s: RCPT TO %s: %w", cfg.Server, to, err)
		}
	}
	w, err := c.Data()
	if err == nil {
		if _, err = w.Write(msg); err == nil {
			err = w.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("mail to %s: %w", cfg.Server, err)
	}
	return c.Quit()
}

// plainAuth is AUTH PLAIN. net/smtp's PlainAuth refuses a connection it does not
// see as TLS or localhost; sendMail has already required STARTTLS when a
// password is configured (config refuses a username without starttls).
type plainAuth struct{ user, pass string }

func (a plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a plainAuth) Next([]byte, bool) ([]byte, error) { return nil, nil }
