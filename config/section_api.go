package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// The keys of api and of one of api.users.
var (
	apiKeys  = []string{"listen", "tls_cert", "tls_key", "users"}
	userKeys = []string{"name", "password_hash"}
)

// api reads the api section: the REST API's listener, certificate and users.
func (p *parser) api(n *yaml.Node, a *API) {
	f, ok := p.mapping(n, "api", apiKeys)
	if !ok {
		return
	}
	a.Listen = DefaultAPIListen
	p.apiListen = n
	if v := f.get("listen"); v != nil {
		p.apiListen = v
		if s, ok := p.str(v, "api.listen"); ok {
			if err := checkListen(s); err != nil {
				p.errorf(v, "api.listen: %v", err)
			}
			a.Listen = s
		}
	}
	if v := f.get("tls_cert"); v != nil {
		a.TLSCert, _ = p.str(v, "api.tls_cert")
	}
	if v := f.get("tls_key"); v != nil {
		a.TLSKey, _ = p.str(v, "api.tls_key")
	}
	switch {
	case a.TLSCert != "" && a.TLSKey == "":
		p.errorf(f.at("tls_cert"), "api.tls_cert is given but api.tls_key is not (give both, or neither for a self-signed certificate)")
	case a.TLSCert == "" && a.TLSKey != "":
		p.errorf(f.at("tls_key"), "api.tls_key is given but api.tls_cert is not (give both, or neither for a self-signed certificate)")
	}
	p.users(f, a)
}

// users reads api.users.
func (p *parser) users(f fields, a *API) {
	users, _ := p.sequence(f.get("users"), "api.users")
	if len(users) == 0 {
		p.errorf(f.at("users"), "api.users: none given, nobody could log in (add one with a hash from `medialb passwd`)")
	}
	seen := map[string]int{}
	for i, un := range users {
		path := fmt.Sprintf("api.users[%d]", i)
		uf, ok := p.mapping(un, path, userKeys)
		if !ok {
			continue
		}
		var u User
		if v := uf.get("name"); v != nil {
			if s, ok := p.str(v, path+".name"); ok {
				switch {
				case s == "" || strings.ContainsAny(s, ": \t\r\n"):
					p.errorf(v, "%s.name: %q: a user name must be non-empty, without colon or white space", path, s)
				case seen[s] != 0:
					p.errorf(v, "%s.name: user %q is already defined on line %d", path, s, seen[s])
				default:
					seen[s] = v.Line
				}
				u.Name = s
			}
		} else {
			p.errorf(un, "%s: name is required", path)
		}
		if v := uf.get("password_hash"); v != nil {
			if s, ok := p.str(v, path+".password_hash"); ok {
				if err := checkBcrypt(s); err != nil {
					p.errorf(v, "%s.password_hash: %v", path, err)
				}
				u.PasswordHash = s
			}
		} else {
			p.errorf(un, "%s: password_hash is required (make one with `medialb passwd`)", path)
		}
		a.Users = append(a.Users, u)
	}
}

// checkListen checks api.listen: host:port with an IP address, localhost or
// no host.
func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. 192.168.94.2:9443, or :9443 for this node's own address)", s)
	}
	if host != "" && host != "localhost" {
		if a, err := netip.ParseAddr(host); err != nil || a.Zone() != "" {
			return fmt.Errorf("%q: the host must be an IP address, localhost or empty", s)
		}
	}
	if _, err := parsePort(port); err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	return nil
}

// checkBcrypt checks that h is a bcrypt hash, as `medialb passwd` makes.
func checkBcrypt(h string) error {
	if !strings.HasPrefix(h, "$2a$") && !strings.HasPrefix(h, "$2b$") && !strings.HasPrefix(h, "$2y$") {
		return fmt.Errorf("not a bcrypt hash: it must start with $2a$, $2b$ or $2y$ (make one with `medialb passwd`)")
	}
	if _, err := bcrypt.Cost([]byte(h)); err != nil || len(h) != 60 {
		return fmt.Errorf("not a valid bcrypt hash (60 characters expected, got %d; make one with `medialb passwd`)", len(h))
	}
	return nil
}
