package alerts

import (
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/internal/logring"
	"github.com/medialb/medialb/lab/alertsink"
)

func TestFromLog(t *testing.T) {
	tests := []struct {
		line logring.Line
		want string // "" for no event
		sev  int
	}{
		{logring.Line{Message: msgServerState, Fields: map[string]any{"service": "Harmonic_Traffic", "server": "HT1", "address": "192.168.94.115", "state": "down", "reason": "body \"Unhealthy\""}},
			`real server HT1 (192.168.94.115) of Harmonic_Traffic is down: body "Unhealthy"`, sevWarning},
		{logring.Line{Message: msgServerState, Fields: map[string]any{"server": "HT1", "state": "online", "reason": "not checked yet"}}, "", 0},
		{logring.Line{Message: msgNoServer, Fields: map[string]any{"service": "Harmonic_Traffic", "vip": "192.168.94.110"}},
			"virtual service Harmonic_Traffic (192.168.94.110) is down: " + msgNoServer, sevWarning},
		{logring.Line{Message: msgServerAgain, Fields: map[string]any{"service": "Harmonic_Traffic", "servers": 1}},
			"virtual service Harmonic_Traffic is up again: 1 real servers take new clients", sevNotice},
		{logring.Line{Message: msgHARole, Fields: map[string]any{"role": "master", "was": "backup", "cause": "peer unreachable"}},
			"HA failover: this node is now master (was backup): peer unreachable", sevWarning},
		{logring.Line{Message: "configuration reloaded"}, "", 0},
	}
	for _, tt := range tests {
		ev, ok := FromLog(tt.line)
		if ok != (tt.want != "") || ev.Text != tt.want || (ok && ev.Severity != tt.sev) {
			t.Errorf("%s: event %v %+v, want %q (severity %d)", tt.line.Message, ok, ev, tt.want, tt.sev)
		}
	}
}

// TestMailAndSyslog: five changes of a flapping server within the batch time
// make one mail (over STARTTLS, logged in), and five syslog messages over UDP
// and over TCP, each in RFC 5424 form.
func TestMailAndSyslog(t *testing.T) {
	sink, err := alertsink.NewSMTP("medialb", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	smtpLn, _ := net.Listen("tcp", "127.0.0.1:0")
	defer smtpLn.Close()
	go sink.Serve(smtpLn)
	var udp, tcp alertsink.Syslog
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer pc.Close()
	go udp.ServeUDP(pc)
	tln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer tln.Close()
	go tcp.ServeTCP(tln)

	ring := logring.New(100)
	log := zerolog.New(ring).With().Timestamp().Logger()
	log.Warn().Str("server", "HT0").Str("state", "down").Msg(msgServerState) // before Start: not alerted
	cfg := &config.Alerts{
		Email: &config.EmailAlerts{Server: smtpLn.Addr().String(), StartTLS: true, TLSVerify: false, Username: "medialb", Password: "s3cret",
			From: "lb1@example.com", To: []string{"ops@example.com", "noc@example.com"}, Batch: 600 * time.Millisecond},
		Syslog: &config.SyslogAlerts{Address: pc.LocalAddr().String(), Protocol: "udp", Facility: 3},
	}
	n := Start(ring, cfg, "lb1", zerolog.Nop())
	tcpNotifier := Start(ring, &config.Alerts{Syslog: &config.SyslogAlerts{Address: tln.Addr().String(), Protocol: "tcp", Facility: 16}}, "lb1", zerolog.Nop())
	for i := range 5 {
		st := []string{"down", "online"}[i%2]
		log.Warn().Str("service", "Harmonic_Traffic").Str("server", "HT1").Str("address", "192.168.94.115").Str("state", st).Str("reason", "flap").Msg(msgServerState)
	}
	mails := sink.Wait(1, 5*time.Second)
	time.Sleep(800 * time.Millisecond) // a second mail would have come by now
	mails = sink.Mails()
	n.Close()
	tcpNotifier.Close()
	if len(mails) != 1 {
		t.Fatalf("%d mails, want one for the batch", len(mails))
	}
	m := mails[0]
	if !m.TLS || m.AuthUser != "medialb" || m.From != "lb1@example.com" || strings.Join(m.To, ",") != "ops@example.com,noc@example.com" {
		t.Errorf("mail envelope %+v", m)
	}
	if !strings.Contains(m.Data, "Subject: medialb lb1: 5 state changes, the first: real server HT1 (192.168.94.115) of Harmonic_Traffic is down: flap") ||
		strings.Count(m.Data, "real server HT1") != 6 || strings.Contains(m.Data, "HT0") {
		t.Errorf("mail:\n%s", m.Data)
	}
	re := regexp.MustCompile(`^<(\d+)>1 \d{4}-\d\d-\d\dT[0-9:.]+Z \S+ medialb \d+ server \[medialb@32473 node="lb1"\] real server HT1 \(192\.168\.94\.115\) of Harmonic_Traffic is (down|online): flap$`)
	for name, got := range map[string][]string{"udp": udp.Messages(), "tcp": tcp.Messages()} {
		if len(got) != 5 {
			t.Errorf("%s: %d syslog messages, want 5: %q", name, len(got), got)
			continue
		}
		for i, msg := range got {
			mm := re.FindStringSubmatch(msg)
			wantPri := map[string][2]string{"udp": {"28", "29"}, "tcp": {"132", "133"}}[name][i%2] // facility*8 + warning/notice
			if mm == nil || mm[1] != wantPri {
				t.Errorf("%s message %d: %q (want priority %s)", name, i, msg, wantPri)
			}
		}
	}
}

func TestMailRefusedWithoutStartTLS(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("220 plain\r\n"))
		buf := make([]byte, 512)
		c.Read(buf)
		c.Write([]byte("250 plain\r\n"))
		c.Read(buf)
	}()
	cfg := &config.EmailAlerts{Server: ln.Addr().String(), StartTLS: true, Username: "u", Password: "p", From: "a@b.c", To: []string{"d@e.f"}}
	err := sendMail(cfg, []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("err = %v, want a refusal without STARTTLS", err)
	}
}

// TestBurstIsReported: when more lines come in one poll than the ring holds,
// the notifier says so in the log.
func TestBurstIsReported(t *testing.T) {
	ring := logring.New(10)
	var out strings.Builder
	var mu sync.Mutex
	n := Start(ring, nil, "lb1", zerolog.New(syncWriter{&mu, &out}))
	log := zerolog.New(ring)
	for range 50 {
		log.Info().Msg("noise")
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		mu.Lock()
		got := out.String()
		mu.Unlock()
		if strings.Contains(got, "overwritten before they were read") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no warning about the lost lines: %q", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.Close()
}

type syncWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (s syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
