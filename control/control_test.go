package control

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/tables"
)

const testConfig = `
node:
  name: lb1
  interface: eth0
  state_dir: %s
virtual_services:
  - name: Web
    address: 192.168.94.100
    ports: "8080,8443"
    layer: 7
    protocol: tcp
    persistence: { mode: source-ip, timeout: 30m }
    health_check: { type: tcp-connect }
    real_servers:
      - { name: HM1, address: 192.168.94.105 }
      - { name: HM2, address: 192.168.94.106 }
  - name: Media
    address: 192.168.94.110
    ports: "1935,554,50000-65535"
    layer: 4
    forwarding: direct-routing
    protocol: tcp+udp
    persistence: { mode: source-ip, timeout: 300s }
    health_check: { type: tcp-connect }
    real_servers:
      - { name: HT1, address: 192.168.94.115 }
      - { name: HT2, address: 192.168.94.116 }
`

type fakeMACs map[netip.Addr][6]byte

func (f fakeMACs) MAC(a netip.Addr) ([6]byte, bool) { m, ok := f[a]; return m, ok }

func newTest(t *testing.T, dir string, macs fakeMACs) (*Controller, *tables.Holder, *bytes.Buffer) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(testConfig, dir)))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	h := &tables.Holder{}
	c, err := New(cfg, h, macs, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	return c, h, &logs
}

func allMACs() fakeMACs {
	return fakeMACs{
		netip.MustParseAddr("192.168.94.115"): {2, 0, 0, 0, 0, 0x15},
		netip.MustParseAddr("192.168.94.116"): {2, 0, 0, 0, 0, 0x16},
	}
}

// clientsOf returns, of n client addresses, those that Pick sends to server.
func clientsOf(svc *tables.Service, server string, n int, now uint32) []netip.Addr {
	var out []netip.Addr
	for i := 0; i < n; i++ {
		a := netip.AddrFrom4([4]byte{192, 168, 95, byte(i + 1)})
		if s, _ := svc.Pick(a, now); s != nil && s.Name == server {
			out = append(out, a)
		}
	}
	return out
}

func state(h *tables.Holder, svc, srv string) tables.State {
	for _, s := range h.Load().Service(svc).Servers {
		if s.Name == srv {
			return s.State
		}
	}
	return 255
}

func TestStatesAndSemantics(t *testing.T) {
	c, h, logs := newTest(t, t.TempDir(), allMACs())
	svc := h.Load().Service("Media")
	ht1 := clientsOf(svc, "HT1", 200, 1)
	if len(ht1) == 0 || len(ht1) == 200 {
		t.Fatalf("clients not spread: %d of 200 on HT1", len(ht1))
	}

	// Drain: persistent clients stay, no new ones.
	if err := c.SetAdmin("Media", "HT1", tables.StateDrain); err != nil {
		t.Fatal(err)
	}
	svc = h.Load().Service("Media")
	if got := len(clientsOf(svc, "HT1", 200, 2)); got != len(ht1) {
		t.Errorf("drain: %d clients on HT1, want its %d persistent ones", got, len(ht1))
	}
	if s, _ := svc.Pick(netip.MustParseAddr("192.168.95.250"), 2); s == nil || s.Name != "HT2" {
		t.Errorf("drain: a new client went to %v, want HT2", s)
	}

	// Halt: persistent clients move at once, and stay moved when it returns.
	if err := c.SetAdmin("Media", "HT1", tables.StateHalt); err != nil {
		t.Fatal(err)
	}
	svc = h.Load().Service("Media")
	if got := len(clientsOf(svc, "HT1", 200, 3)); got != 0 {
		t.Errorf("halt: %d clients still on HT1", got)
	}
	if err := c.SetAdmin("Media", "HT1", tables.StateOnline); err != nil {
		t.Fatal(err)
	}
	svc = h.Load().Service("Media")
	for _, a := range ht1 {
		if s, _ := svc.Pick(a, 4); s == nil || s.Name != "HT2" {
			t.Errorf("after halt and online, %s went back to %v: persistence should keep it on HT2", a, s)
			break
		}
	}

	// Down via health: same as halt; the log says why once.
	c.SetHealth("Media", "HT2", false, "tcp-connect 192.168.94.116:1935: connection refused")
	c.SetHealth("Media", "HT2", false, "tcp-connect 192.168.94.116:1935: connection refused")
	if st := state(h, "Media", "HT2"); st != tables.StateDown {
		t.Fatalf("HT2 state %v, want down", st)
	}
	if n := strings.Count(logs.String(), `"server":"HT2","address":"192.168.94.116","state":"down"`); n != 1 {
		t.Errorf("down logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("log does not carry the check's reason:\n%s", logs)
	}
	// Halt wins over a passing check.
	c.SetAdmin("Media", "HT1", tables.StateHalt)
	c.SetHealth("Media", "HT1", true, "ok")
	if st := state(h, "Media", "HT1"); st != tables.StateHalt {
		t.Errorf("HT1 state %v, want halt (operator wins over health)", st)
	}
	// Both out: the service drops new flows and says so once.
	if s, v := h.Load().Service("Media").Pick(netip.MustParseAddr("192.168.95.251"), 5); s != nil || v != tables.VerdictNoServer {
		t.Errorf("all out: Pick = %v, %v; want nil, no server", s, v)
	}
	if !c.ServiceDown("Media") || strings.Count(logs.String(), "new flows are dropped") != 1 {
		t.Errorf("service down not reported once:\n%s", logs)
	}
	// States: copies of what Admin and HealthOf answer one by one.
	admin, health := c.States()
	k1, k2 := Key{Service: "Media", Server: "HT1"}, Key{Service: "Media", Server: "HT2"}
	if len(admin) != 1 || admin[k1] != tables.StateHalt || !health[k1].Up || health[k2].Up || !health[k2].Checked {
		t.Errorf("States() = %v, %v", admin, health)
	}
	admin[k1] = tables.StateOnline
	if c.Admin("Media", "HT1") != tables.StateHalt {
		t.Error("changing the map States returned changed the controller")
	}
}

func TestUnknownNames(t *testing.T) {
	c, _, _ := newTest(t, t.TempDir(), allMACs())
	for _, k := range []Key{{Service: "Nope", Server: "HT1"}, {Service: "Media", Server: "Nope"}} {
		if err := c.SetAdmin(k.Service, k.Server, tables.StateDrain); !errors.Is(err, ErrUnknown) {
			t.Errorf("SetAdmin(%s) = %v, want ErrUnknown", k, err)
		}
	}
	if err := c.SetAdmin("Media", "HT1", tables.StateDown); err == nil {
		t.Error("an operator could set down")
	}
}

func TestAdminStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c, _, _ := newTest(t, dir, allMACs())
	if err := c.SetAdmin("Web", "HM2", tables.StateDrain); err != nil {
		t.Fatal(err)
	}
	_, h, _ := newTest(t, dir, allMACs())
	if st := state(h, "Web", "HM2"); st != tables.StateDrain {
		t.Errorf("after restart HM2 is %v, want drain", st)
	}
}

func TestUnresolvedMACNotPicked(t *testing.T) {
	macs := allMACs()
	delete(macs, netip.MustParseAddr("192.168.94.116"))
	c, h, _ := newTest(t, t.TempDir(), macs)
	if got := len(clientsOf(h.Load().Service("Media"), "HT2", 200, 1)); got != 0 {
		t.Errorf("%d clients picked HT2 whose MAC is unknown", got)
	}
	macs[netip.MustParseAddr("192.168.94.116")] = [6]byte{2, 0, 0, 0, 0, 0x16}
	c.Refresh("test")
	if got := len(clientsOf(h.Load().Service("Media"), "HT2", 200, 1000)); got == 0 {
		t.Error("HT2 not picked after its MAC was learned")
	}
}

// TestAdminStatesBetweenPair: what one node's AdminStates gives, another's
// ApplyAdminStates takes: drain and halt arrive, a server missing from the
// map goes online, an unknown state name is left alone.
func TestAdminStatesBetweenPair(t *testing.T) {
	master, _, _ := newTest(t, t.TempDir(), allMACs())
	backup, _, logs := newTest(t, t.TempDir(), allMACs())
	if err := master.SetAdmin("Media", "HT1", tables.StateDrain); err != nil {
		t.Fatal(err)
	}
	if err := master.SetAdmin("Web", "HM2", tables.StateHalt); err != nil {
		t.Fatal(err)
	}
	if err := backup.SetAdmin("Media", "HT2", tables.StateHalt); err != nil {
		t.Fatal(err)
	}
	states := master.AdminStates()
	if want := map[string]string{"Media/HT1": "drain", "Web/HM2": "halt"}; !maps.Equal(states, want) {
		t.Fatalf("AdminStates() = %v, want %v", states, want)
	}
	backup.ApplyAdminStates(states)
	if !maps.Equal(backup.AdminStates(), states) {
		t.Errorf("after ApplyAdminStates the backup has %v, want %v", backup.AdminStates(), states)
	}
	if !strings.Contains(logs.String(), "administrative state taken from the master") {
		t.Errorf("not logged:\n%s", logs)
	}
	backup.ApplyAdminStates(map[string]string{"Media/HT1": "sideways", "Web/HM2": "halt"})
	if got := backup.Admin("Media", "HT1"); got != tables.StateDrain {
		t.Errorf("an unknown state name changed HT1 to %v", got)
	}
}
