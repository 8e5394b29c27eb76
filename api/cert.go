package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/medialb/medialb/internal/atomicfile"
)

// Files of the generated certificate in the state directory.
const (
	CertFile = "api-cert.pem"
	KeyFile  = "api-key.pem"
)

const (
	certLifetime = 3 * 365 * 24 * time.Hour
	certRenew    = 30 * 24 * time.Hour // a certificate this close to expiry is replaced
)

// certNames are the subject alternative names of a generated certificate.
type certNames struct {
	DNS []string
	IPs []netip.Addr
}

// wantNames lists the names a generated certificate covers: the listen address
// unless it is unspecified, the host name, localhost and the loopback addresses.
func wantNames(listen, hostname string) certNames {
	n := certNames{DNS: []string{"localhost"}, IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}}
	if hostname != "" && hostname != "localhost" {
		n.DNS = append([]string{hostname}, n.DNS...)
	}
	if host, _, err := net.SplitHostPort(listen); err == nil {
		if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() && !slices.Contains(n.IPs, a.Unmap()) {
			n.IPs = append([]netip.Addr{a.Unmap()}, n.IPs...)
		}
	}
	return n
}

// loadCertificate returns the certificate the listener serves: the configured
// files, or the self-signed one kept in stateDir (generated on first use and again
// when it expires or no longer covers the names). generated reports a new one.
func loadCertificate(cfg Config) (cert tls.Certificate, generated bool, err error) {
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			return cert, false, errors.New("load API certificate: api.tls_cert and api.tls_key must be set together")
		}
		cert, err = tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return cert, false, fmt.Errorf("load API certificate %s: %w", cfg.TLSCert, err)
		}
		return cert, false, nil
	}
	host, _ := os.Hostname()
	return selfSigned(cfg.StateDir, wantNames(cfg.Listen, host), time.Now())
}

// selfSigned loads the generated certificate from dir, or generates and saves a
// new one when there is none, it cannot be read, it expires within certRenew, or
// it lacks one of names.
func selfSigned(dir string, names certNames, now time.Time) (tls.Certificate, bool, error) {
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	if cert, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && covers(cert.Leaf, names, now) {
		return cert, false, nil
	}
	certPEM, keyPEM, err := generate(names, now)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("create state directory for the API certificate: %w (set node.state_dir or api.tls_cert)", err)
	}
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, false, err
	}
	if err := atomicfile.Write(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, false, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("load generated API certificate: %w", err)
	}
	return cert, true, nil
}

func covers(leaf *x509.Certificate, names certNames, now time.Time) bool {
	if leaf == nil || leaf.IsCA || now.Before(leaf.NotBefore) || now.Add(certRenew).After(leaf.NotAfter) {
		return false
	}
	for _, d := range names.DNS {
		if !slices.Contains(leaf.DNSNames, d) {
			return false
		}
	}
	for _, a := range names.IPs {
		if !slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool {
			b, ok := netip.AddrFromSlice(ip)
			return ok && b.Unmap() == a
		}) {
			return false
		}
	}
	return true
}

func generate(names certNames, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate API key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("generate API certificate serial: %w", err)
	}
	cn := "medialb"
	if len(names.DNS) > 0 {
		cn = names.DNS[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"medialb self-signed"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certLifetime),
		// A leaf: a stolen key of a CA certificate that someone added to a
		// trust store would sign certificates for any name.
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              names.DNS,
	}
	for _, a := range names.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, a.AsSlice())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create API certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode API key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}
