package api

import (
	"context"
	"crypto/tls"
	"net"
	"time"
)

// Update is a new API configuration checked by Prepare: users, certificate and,
// when api.listen changed, the new listener already bound. Commit puts it in
// force; Abort drops it. Exactly one of them must be called.
type Update struct {
	s    *Server
	cfg  Config
	auth *authenticator
	cert tls.Certificate
	ln   net.Listener // nil when api.listen stays
}

// Prepare checks cfg's users, loads (or generates) its certificate and binds a
// changed api.listen, changing nothing in force. cfg.Peer and cfg.Version are
// ignored: they stay as New had them.
func (s *Server) Prepare(cfg Config) (*Update, error) {
	auth, cert, _, err := usersAndCert(&cfg)
	if err != nil {
		return nil, err
	}
	u := &Update{s: s, cfg: cfg, auth: auth, cert: cert}
	s.mu.Lock()
	moved := cfg.Listen != s.cfg.Listen && s.srv != nil
	s.mu.Unlock()
	if moved {
		if u.ln, err = listen(cfg.Listen); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// Abort drops a prepared update.
func (u *Update) Abort() {
	if u != nil && u.ln != nil {
		u.ln.Close()
	}
}

// Commit puts the update in force: the next request is checked against the new
// users (a removed user's cached logins go with the old ones), the next TLS
// handshake gets the new certificate, and a new api.listen serves at once while
// the old listener finishes its requests in the background.
func (u *Update) Commit() {
	s := u.s
	s.auth.Store(u.auth)
	s.cert.Store(&u.cert)
	s.mu.Lock()
	peer, version := s.cfg.Peer, s.cfg.Version
	file, logs, every := s.cfg.ConfigFile, s.cfg.Logs, s.cfg.SampleEvery // the node's, not the file's
	s.cfg = u.cfg
	s.cfg.Peer, s.cfg.Version = peer, version
	s.cfg.ConfigFile, s.cfg.Logs, s.cfg.SampleEvery = file, logs, every
	old := s.srv
	if u.ln != nil {
		s.serveLocked(u.ln)
	}
	s.mu.Unlock()
	if u.ln != nil && old != nil {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := old.Shutdown(ctx); err != nil {
				old.Close()
			}
		}()
	}
}
