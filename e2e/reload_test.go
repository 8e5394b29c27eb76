package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
)

// rlConfig is the reload test's file: a layer-4 VIP, PORT for the API, USERS and
// TLS replaced per step, SERVICES appended.
const rlConfig = `
node:
  name: lb1
  interface: {{.Iface}}
  state_dir: {{.StateDir}}
  queues: QUEUES
api:
  listen: {{.LB}}:PORT
TLS  users:
    - name: loadbalancer
      password_hash: "$2a$10$u0cqovdTwUFe8GZsu.3X/OU4fJQhpx.weaiGm3.Z4VcxMEaEsc/Pm"
USERSvirtual_services:
SERVICES`

const rlTraffic = `  - name: Harmonic_Traffic
    address: 192.168.94.110
    ports: "1935,554"
    layer: 4
    protocol: tcp+udp
    health_check: { type: tcp-connect, port: 8443, interval: 1s, timeout: 500ms }
    real_servers:
      - { name: HT1, address: 192.168.94.115 }
      - { name: HT2, address: 192.168.94.116 }
`

// rlBlocked is a layer-7 service on a port something else in the node holds.
const rlBlocked = `  - name: Blocked
    address: 192.168.94.120
    ports: "9000"
    layer: 7
    health_check: { type: none }
    real_servers:
      - { name: HM1, address: 192.168.94.105 }
`

type rlStep struct {
	queues, port, tls, users, services string
}

func (s rlStep) config() string {
	return strings.NewReplacer("QUEUES", s.queues, "PORT", s.port, "TLS", s.tls, "USERS", s.users, "SERVICES", s.services).Replace(rlConfig)
}

// TestReloadAllOrNothing: a reload a listener cannot be bound for changes nothing
// (the VIP it drops stays, the user it removes still logs in); a good one applies
// api.users (a removed user gets 401 within a second), api.tls_cert/tls_key and
// api.listen live, and names what needs a restart.
func TestReloadAllOrNothing(t *testing.T) {
	e := newEnv(t, "rl", lab.Options{})
	hash, err := bcrypt.GenerateFromPassword([]byte("op-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	operator := "    - name: operator\n      password_hash: \"" + string(hash) + "\"\n"
	start := rlStep{queues: "1", port: "9443", users: operator, services: rlTraffic}
	p := e.start(start.config())
	call := func(port, user, pass, method, path string) (int, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		code, body, err := p.API(ctx, method, port, path, user, pass)
		if err != nil {
			t.Fatalf("%s %s on port %s: %v", method, path, port, err)
		}
		return code, body
	}
	if code, _ := call("9443", "operator", "op-pass", "GET", "/api/v1/overview"); code != 200 {
		t.Fatalf("operator before the reloads: %d", code)
	}

	// Refused: port 9000 is held in the load balancer's namespace.
	var blocker net.Listener
	if err := lab.Do(e.lab.LBs[0].NS, func() (err error) { blocker, err = net.Listen("tcp", ":9000"); return err }); err != nil {
		t.Fatal(err)
	}
	e.writeConfig(rlStep{queues: "1", port: "9443", services: rlBlocked}.config())
	code, body := call("9443", apUser, apPass, "POST", "/api/v1/reload")
	if code == 200 || !strings.Contains(string(body), "refused") || !strings.Contains(string(body), "9000") {
		t.Fatalf("reload with port 9000 taken: %d %s, want it refused", code, body)
	}
	if out, _ := lab.Exec(e.lab.LBs[0].NS, "ip", "-br", "addr", "show", "dev", e.lab.LBs[0].Link).CombinedOutput(); !strings.Contains(string(out), "192.168.94.110/") {
		t.Errorf("the refused reload took VIP 192.168.94.110 down:\n%s", out)
	}
	if code, _ := call("9443", "operator", "op-pass", "GET", "/api/v1/overview"); code != 200 {
		t.Errorf("the refused reload removed user operator: %d", code)
	}
	_, body = call("9443", apUser, apPass, "GET", "/api/v1/overview")
	if !strings.Contains(string(body), "Harmonic_Traffic") || strings.Contains(string(body), "Blocked") {
		t.Errorf("overview after the refused reload: %s", body)
	}
	blocker.Close()

	// Applied: operator removed, our own certificate, the API on 9444, queues changed.
	certFile, keyFile := writeCert(t, e.dir, "medialb-reload-test")
	tlsLines := "  tls_cert: " + certFile + "\n  tls_key: " + keyFile + "\n"
	e.writeConfig(rlStep{queues: "2", port: "9444", tls: tlsLines, services: rlTraffic}.config())
	code, body = call("9443", apUser, apPass, "POST", "/api/v1/reload")
	var res api.ReloadResult
	json.Unmarshal(body, &res)
	if code != 200 || res.Result != "reloaded; restart needed for: node.queues" {
		t.Fatalf("reload: %d %s, want reloaded; restart needed for: node.queues", code, body)
	}
	t0 := time.Now()
	for {
		code, _ := call("9444", "operator", "op-pass", "GET", "/api/v1/overview")
		if code == 401 {
			break
		}
		if time.Since(t0) > time.Second {
			t.Fatalf("removed user operator still answered %d a second after the reload", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := call("9444", apUser, apPass, "GET", "/api/v1/overview"); code != 200 {
		t.Errorf("api.listen moved to 9444: %d", code)
	}
	resp, err := e.lab.HTTPClient(e.lab.Client.Sources4[0]).Get("https://" + e.lab.LBs[0].Addr4.String() + ":9444/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != "medialb-reload-test" {
		t.Errorf("API certificate %q after the reload, want medialb-reload-test", cn)
	}
	deadline := time.Now().Add(6 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _, err := p.API(ctx, "GET", "9443", "/api/v1/overview", apUser, apPass)
		cancel()
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the API still answers on the old api.listen port 9443")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := p.WaitFor(context.Background(), 0, time.Second, "restart-needed log line", func(ev lbproc.Event) bool {
		return ev.Msg() == "configuration reloaded" && ev.Str("restart_needed") == "node.queues"
	}); err != nil {
		t.Error(err)
	}
}

// writeCert writes a self-signed certificate for the lab's load balancer with
// common name cn; it returns the certificate and key files.
func writeCert(t *testing.T, dir, cn string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("192.168.94.2")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "own-cert.pem"), filepath.Join(dir, "own-key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestHAReloadSync: a reload of both nodes with a new ha.secret and ha.sync_port
// restarts the sync channel on the new port with the new secret: the old port is
// closed, the new one accepts, and each node hears its peer again.
func TestHAReloadSync(t *testing.T) {
	e, p := startedPair(t, 2)
	marks := [2]int{p.procs[0].Mark(), p.procs[1].Mark()}
	for i, cfg := range p.cfgs {
		data, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Replace(string(data), `secret: "lab pair secret 0123456789"`, "secret: \"a new lab pair secret 0123456789\"\n  sync_port: 7790", 1)
		if text == string(data) {
			t.Fatal("haConfig has no secret line to replace")
		}
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.procs[i].Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if _, err := p.procs[i].WaitFor(context.Background(), marks[i], 10*time.Second, "sync restarted", func(ev lbproc.Event) bool {
			return ev.Msg() == "HA: sync channel restarted with the new ha settings"
		}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lb1 := e.lab.LBs[0].Addr4
	if c, err := e.lab.DialTCP(ctx, e.lab.Client.Sources4[0], netip.AddrPortFrom(lb1, 7790)); err != nil {
		t.Errorf("nothing listens on the new ha.sync_port 7790 of lb1: %v", err)
	} else {
		c.Close()
	}
	if c, err := e.lab.DialTCP(ctx, e.lab.Client.Sources4[0], netip.AddrPortFrom(lb1, 7778)); err == nil {
		c.Close()
		t.Error("lb1 still listens on the old ha.sync_port 7778")
	}
	// Heard again over the new channel: the peer states are fresh after more than
	// the peer timeout.
	time.Sleep(2 * time.Second)
	p.waitHA(0, 5*time.Second, "the backup heard over the new channel", func(o haOverview) bool { return o.HA.PeerState == "backup" })
	p.waitHA(1, 5*time.Second, "the master heard over the new channel", func(o haOverview) bool { return o.HA.PeerState == "master" })
}
