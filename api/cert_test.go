package api

import (
	"bytes"
	"crypto/x509"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestCertificatePersisted(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Listen: "192.0.2.10:9443", StateDir: dir, Users: testUsers(t)}
	s1, err := New(cfg, newFake(), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	s2, err := New(cfg, newFake(), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := s1.Certificate().Leaf, s2.Certificate().Leaf
	if !bytes.Equal(c1.Raw, c2.Raw) {
		t.Fatal("the second New generated another certificate")
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	host, _ := os.Hostname()
	for _, name := range []string{"localhost", host} {
		if name != "" && !slices.Contains(c1.DNSNames, name) {
			t.Errorf("certificate DNS names %v lack %q", c1.DNSNames, name)
		}
	}
	if !slices.ContainsFunc(c1.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("192.0.2.10")) }) {
		t.Errorf("certificate IPs %v lack the listen address", c1.IPAddresses)
	}
	if c1.IsCA || c1.KeyUsage&x509.KeyUsageCertSign != 0 || !slices.Equal(c1.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("certificate IsCA %v, key usage %v, extended %v: want a leaf for server auth only", c1.IsCA, c1.KeyUsage, c1.ExtKeyUsage)
	}
	if c1.PublicKeyAlgorithm.String() != "ECDSA" {
		t.Errorf("key algorithm %v, want ECDSA", c1.PublicKeyAlgorithm)
	}
	if err := c1.VerifyHostname("192.0.2.10"); err != nil {
		t.Error(err)
	}

	// Another listen address is not covered: a new certificate is made for it.
	cfg.Listen = "192.0.2.11:9443"
	s3, err := New(cfg, newFake(), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(s3.Certificate().Leaf.Raw, c1.Raw) {
		t.Error("listen address changed but the certificate did not")
	}
	// An unspecified listen address adds no IP beyond the loopback ones.
	if n := wantNames("0.0.0.0:9443", "lb1"); len(n.IPs) != 2 || n.DNS[0] != "lb1" {
		t.Errorf("names for 0.0.0.0: %+v", n)
	}
}

func TestCertificateRenewed(t *testing.T) {
	dir := t.TempDir()
	names := wantNames("127.0.0.1:9443", "lb1")
	now := time.Now()
	c1, gen, err := selfSigned(dir, names, now)
	if err != nil || !gen {
		t.Fatalf("first: generated %v, %v", gen, err)
	}
	c2, gen, err := selfSigned(dir, names, now.Add(24*time.Hour))
	if err != nil || gen || !bytes.Equal(c1.Leaf.Raw, c2.Leaf.Raw) {
		t.Fatalf("a day later: generated %v, %v", gen, err)
	}
	_, gen, err = selfSigned(dir, names, c1.Leaf.NotAfter.Add(-certRenew/2))
	if err != nil || !gen {
		t.Fatalf("close to expiry: generated %v, %v; want a new certificate", gen, err)
	}
	// A damaged file is replaced.
	os.WriteFile(filepath.Join(dir, CertFile), []byte("garbage"), 0o644)
	if _, gen, err = selfSigned(dir, names, now); err != nil || !gen {
		t.Fatalf("damaged file: generated %v, %v", gen, err)
	}
}

func TestConfiguredCertificate(t *testing.T) {
	dir := t.TempDir()
	c, _, err := selfSigned(dir, certNames{DNS: []string{"lb.example"}, IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	s, err := New(Config{Listen: "127.0.0.1:0", TLSCert: filepath.Join(dir, CertFile), TLSKey: filepath.Join(dir, KeyFile),
		StateDir: state, Users: testUsers(t)}, newFake(), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Certificate().Leaf.Raw, c.Leaf.Raw) {
		t.Error("configured certificate not used")
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("state directory written with a configured certificate: %v", ents)
	}
	_, err = New(Config{Listen: "127.0.0.1:0", TLSCert: filepath.Join(dir, "missing.pem"), TLSKey: filepath.Join(dir, KeyFile),
		StateDir: state, Users: testUsers(t)}, newFake(), testLogger())
	if err == nil {
		t.Error("missing certificate file accepted")
	}
}

// TestCertificateCAReplaced: a generated certificate of an earlier version
// (a CA) is not kept; a leaf with the same names is.
func TestCertificateCAReplaced(t *testing.T) {
	now := time.Now()
	leaf := &x509.Certificate{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certLifetime)}
	if !covers(leaf, certNames{}, now) {
		t.Fatal("a valid leaf is not kept")
	}
	leaf.IsCA = true
	if covers(leaf, certNames{}, now) {
		t.Error("a CA certificate is kept; it must be generated again as a leaf")
	}
}
