package health

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// rawServer is a TCP server on 127.0.0.1:0 that runs handle for each
// connection, optionally behind TLS. It stops, closing every connection and
// waiting for its goroutines, when the test ends.
type rawServer struct {
	ln    net.Listener
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// handler serves one connection: c is what to talk on (TLS or not), raw is
// the TCP connection under it, done closes when the server stops.
type handler func(c, raw net.Conn, done <-chan struct{})

func startRaw(t testing.TB, cfg *tls.Config, h handler) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &rawServer{ln: ln, done: make(chan struct{}), conns: make(map[net.Conn]struct{})}
	s.wg.Go(func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[raw] = struct{}{}
			s.mu.Unlock()
			s.wg.Go(func() {
				defer func() {
					raw.Close()
					s.mu.Lock()
					delete(s.conns, raw)
					s.mu.Unlock()
				}()
				c := raw
				if cfg != nil {
					c = tls.Server(raw, cfg)
				}
				h(c, raw, s.done)
			})
		}
	})
	t.Cleanup(func() {
		close(s.done)
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// readRequest reads a request's header (a GET has no body).
func readRequest(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if line == "\r\n" || line == "\n" {
			return nil
		}
	}
}

// respond returns a handler that reads a request and writes resp.
func respond(resp string) handler {
	return func(c, _ net.Conn, _ <-chan struct{}) {
		if readRequest(c) != nil {
			return
		}
		c.Write([]byte(resp))
	}
}

// silent accepts and never answers, not even a TLS handshake.
func silent(_, _ net.Conn, done <-chan struct{}) { <-done }

// slow answers a valid response one byte a second.
func slow(c, _ net.Conn, done <-chan struct{}) {
	if readRequest(c) != nil {
		return
	}
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nHealthy"
	for i := range len(resp) {
		select {
		case <-done:
			return
		case <-time.After(time.Second):
		}
		if _, err := c.Write([]byte{resp[i]}); err != nil {
			return
		}
	}
}

// huge sends header, then 100 MB of body (in chunks if chunked) or until
// the client goes.
func huge(header string, chunked bool) handler {
	return func(c, _ net.Conn, _ <-chan struct{}) {
		if readRequest(c) != nil {
			return
		}
		if _, err := c.Write([]byte(header)); err != nil {
			return
		}
		chunk := make([]byte, 32<<10)
		for i := range chunk {
			chunk[i] = 'x'
		}
		if chunked {
			chunk = append(fmt.Appendf(nil, "%x\r\n", len(chunk)), append(chunk, "\r\n"...)...)
		}
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for n := 0; n < 100<<20; n += 32 << 10 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}
}

// garbage sends bytes that are neither HTTP nor TLS, then waits.
func garbage(_, raw net.Conn, done <-chan struct{}) {
	b := make([]byte, 4096)
	for i := range b {
		b[i] = byte(i*7 + 13)
	}
	raw.Write(b)
	<-done
}

// resetAfter reads a request, writes part, and resets the connection.
func resetAfter(part string) handler {
	return func(c, raw net.Conn, _ <-chan struct{}) {
		if readRequest(c) != nil {
			return
		}
		if part != "" {
			c.Write([]byte(part))
			time.Sleep(50 * time.Millisecond)
		}
		raw.(*net.TCPConn).SetLinger(0)
		raw.Close()
	}
}

// refused returns an address nothing listens on.
func refused(t testing.TB) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return ap
}

// testPKI is a CA and a server certificate it signed, for 127.0.0.1 and
// status.example.
type testPKI struct {
	caFile string
	cert   tls.Certificate
}

func newPKI(t testing.TB) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "medialb test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "status.example"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		DNSNames:     []string{"status.example"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return testPKI{caFile: caFile, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

func (p testPKI) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.cert}}
}
