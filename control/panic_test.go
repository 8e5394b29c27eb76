package control

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/tables"
)

const panicConfig = `
node: { name: lb1, interface: eth0 }
virtual_services:
  - name: Media
    address: 192.168.94.110
    ports: "1935"
    layer: 4
    protocol: tcp+udp
    health_check: { type: tcp-connect, interval: 1h, timeout: 1s }
    %s
    real_servers:
      - { name: A, address: 192.168.94.115 }
      - { name: B, address: 192.168.94.116 }
      - { name: C, address: 192.168.94.117 }
      - { name: D, address: 192.168.94.118 }
`

func newPanicTest(t *testing.T, extra string) (*Controller, *tables.Holder, *bytes.Buffer) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(strings.Replace(panicConfig, "%s", extra, 1)))
	if err != nil {
		t.Fatal(err)
	}
	macs := fakeMACs{}
	for i, a := range []string{"115", "116", "117", "118"} {
		macs[mustAddr("192.168.94."+a)] = [6]byte{2, 0, 0, 0, 0, byte(i + 1)}
	}
	var logs bytes.Buffer
	h := &tables.Holder{}
	c, err := New(cfg, h, macs, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	return c, h, &logs
}

func states(h *tables.Holder) string {
	var b strings.Builder
	for _, s := range h.Load().Service("Media").Servers {
		b.WriteString(s.Name + "=" + s.State.String() + " ")
	}
	return strings.TrimSpace(b.String())
}

// TestPanicThreshold: with the default threshold (50 %), two of four servers failing
// without an answer are held (still online, for one window); a third within the window
// is a panic: all three are kept in service, loudly; a server that answers it is unwell still goes down;
// the panic ends when the kept servers' checks pass again.
func TestPanicThreshold(t *testing.T) {
	c, h, logs := newPanicTest(t, "")
	c.SetHealthResult("Media", "A", false, "timeout after 1s (connecting)", true)
	c.SetHealthResult("Media", "B", false, "timeout after 1s (connecting)", true)
	if got := states(h); got != "A=online B=online C=online D=online" {
		t.Fatalf("two of four without an answer (held): %s", got)
	}
	if c.Panic("Media").Active {
		t.Fatal("panic at 50 %: the threshold is more than half")
	}
	c.SetHealthResult("Media", "C", false, "timeout after 1s (connecting)", true)
	if got := states(h); got != "A=online B=online C=online D=online" {
		t.Errorf("three of four without an answer (panic): %s, want all kept online", got)
	}
	ps := c.Panic("Media")
	if !ps.Active || ps.Count != 1 || len(ps.Kept) != 3 {
		t.Errorf("panic status %+v, want active, count 1, 3 kept", ps)
	}
	if !strings.Contains(logs.String(), "PANIC") {
		t.Errorf("no loud log line:\n%s", logs)
	}
	// During the panic a real failure (an answer) takes its server out.
	c.SetHealthResult("Media", "D", false, "connection refused", false)
	if got := states(h); got != "A=online B=online C=online D=down" {
		t.Errorf("refused during the panic: %s, want D down", got)
	}
	// A kept server that really fails (answers so) goes down too.
	c.SetHealthResult("Media", "A", false, `http-get: body "Unhealthy", want "Healthy"`, false)
	if got := states(h); !strings.HasPrefix(got, "A=down") {
		t.Errorf("kept server answering unwell: %s, want A down", got)
	}
	c.SetHealthResult("Media", "B", true, "connected", false)
	if !c.Panic("Media").Active {
		t.Error("panic over while C is still kept")
	}
	c.SetHealthResult("Media", "C", true, "connected", false)
	if ps := c.Panic("Media"); ps.Active || ps.Count != 1 {
		t.Errorf("after the kept servers came back: %+v, want over", ps)
	}
	if got := states(h); got != "A=down B=online C=online D=down" {
		t.Errorf("after the panic: %s", got)
	}
}

// A failure without an answer below the threshold takes its server out one window
// (interval + timeout) later; an answer before that cancels it.
func TestPanicHeldFailure(t *testing.T) {
	c, h, _ := newPanicTest(t, "")
	c.cfg.Services[0].HealthCheck.Interval, c.cfg.Services[0].HealthCheck.Timeout = 100*time.Millisecond, 50*time.Millisecond
	c.SetHealthResult("Media", "A", false, "timeout", true)
	c.SetHealthResult("Media", "B", false, "timeout", true)
	c.SetHealthResult("Media", "B", true, "connected", false) // B answers again in time
	if got := states(h); got != "A=online B=online C=online D=online" {
		t.Fatalf("right after: %s, want A held", got)
	}
	time.Sleep(400 * time.Millisecond)
	if got := states(h); got != "A=down B=online C=online D=online" {
		t.Errorf("a window later: %s, want A down, B online", got)
	}
}

// With panic_threshold 0 every server that fails goes down.
func TestPanicThresholdOff(t *testing.T) {
	c, h, _ := newPanicTest(t, "panic_threshold: 0")
	for _, s := range []string{"A", "B", "C", "D"} {
		c.SetHealthResult("Media", s, false, "timeout", true)
	}
	if got := states(h); got != "A=down B=down C=down D=down" || c.Panic("Media").Active {
		t.Errorf("threshold 0: %s, panic %+v", got, c.Panic("Media"))
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
