// Package alertsink receives what medialb's alerts send, for tests: a small SMTP
// server (EHLO, STARTTLS with a generated certificate, AUTH PLAIN, MAIL, RCPT,
// DATA) and a syslog receiver (UDP datagrams, or TCP with octet counting). Both
// serve on listeners the caller opens (inside a lab namespace, with lab.Do).
package alertsink

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mail is one message the SMTP server accepted.
type Mail struct {
	From     string
	To       []string
	Data     string // headers and body, CRLF line ends, without the final "."
	TLS      bool   // sent after STARTTLS
	AuthUser string // the user that logged in, "" for none
}

// SMTP is the mail server. Create it with NewSMTP, then Serve it.
type SMTP struct {
	user, pass string
	tls        *tls.Config

	mu    sync.Mutex
	mails []Mail
	got   chan struct{} // closed and replaced on every mail
}

// NewSMTP returns a server that requires STARTTLS and AUTH PLAIN as user/pass
// before it takes a mail.
func NewSMTP(user, pass string) (*SMTP, error) {
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	return &SMTP{user: user, pass: pass, tls: &tls.Config{Certificates: []tls.Certificate{cert}}, got: make(chan struct{})}, nil
}

// Mails returns the mails received so far.
func (s *SMTP) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail{}, s.mails...)
}

// Wait waits until n mails arrived or timeout passed, and returns them.
func (s *SMTP) Wait(n int, timeout time.Duration) []Mail {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		got, ch := len(s.mails), s.got
		s.mu.Unlock()
		if got >= n {
			return s.Mails()
		}
		select {
		case <-ch:
		case <-deadline:
			return s.Mails()
		}
	}
}

// Serve accepts connections on ln until it is closed.
func (s *SMTP) Serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go s.session(c)
	}
}

func (s *SMTP) session(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	say := func(line string) { io.WriteString(c, line+"\r\n") }
	var m Mail
	authed := false
	say("220 alertsink ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		arg := strings.TrimSpace(strings.TrimPrefix(line, strings.SplitN(line, " ", 2)[0]))
		switch cmd {
		case "EHLO", "HELO":
			if m.TLS {
				say("250-alertsink")
				say("250 AUTH PLAIN")
			} else {
				say("250-alertsink")
				say("250 STARTTLS")
			}
		case "STARTTLS":
			say("220 go ahead")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, r, m.TLS = tc, bufio.NewReader(tc), true
		case "AUTH":
			f := strings.Fields(arg)
			if !m.TLS || len(f) != 2 || strings.ToUpper(f[0]) != "PLAIN" {
				say("504 AUTH PLAIN after STARTTLS only")
				continue
			}
			raw, _ := base64.StdEncoding.DecodeString(f[1])
			parts := strings.Split(string(raw), "\x00")
			if len(parts) != 3 || parts[1] != s.user || parts[2] != s.pass {
				say("535 authentication failed")
				continue
			}
			authed, m.AuthUser = true, parts[1]
			say("235 ok")
		case "MAIL":
			if !authed {
				say("530 authentication required")
				continue
			}
			m.From = strings.Trim(arg[strings.Index(arg, ":")+1:], "<> ")
			say("250 ok")
		case "RCPT":
			m.To = append(m.To, strings.Trim(arg[strings.Index(arg, ":")+1:], "<> "))
			say("250 ok")
		case "DATA":
			say("354 go ahead")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			m.Data = b.String()
			s.mu.Lock()
			s.mails = append(s.mails, m)
			close(s.got)
			s.got = make(chan struct{})
			s.mu.Unlock()
			m = Mail{TLS: m.TLS, AuthUser: m.AuthUser}
			say("250 queued")
		case "RSET", "NOOP":
			say("250 ok")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "alertsink"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{"alertsink"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// Syslog collects syslog messages. Its zero value is ready; Serve it.
type Syslog struct {
	mu   sync.Mutex
	msgs []string
}

// Messages returns the messages received so far.
func (s *Syslog) Messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.msgs...)
}

func (s *Syslog) add(m string) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
}

// ServeUDP reads datagrams from pc until it is closed.
func (s *Syslog) ServeUDP(pc net.PacketConn) {
	buf := make([]byte, 64<<10)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		s.add(string(buf[:n]))
	}
}

// ServeTCP reads octet-counted messages (RFC 6587: "LEN SP MSG") from
// connections on ln until it is closed.
func (s *Syslog) ServeTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				l, err := r.ReadString(' ')
				if err != nil {
					return
				}
				n, err := strconv.Atoi(strings.TrimSpace(l))
				if err != nil || n <= 0 || n > 64<<10 {
					s.add(fmt.Sprintf("bad frame length %q", l))
					return
				}
				b := make([]byte, n)
				if _, err := io.ReadFull(r, b); err != nil {
					return
				}
				s.add(string(b))
			}
		}()
	}
}
