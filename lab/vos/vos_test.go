package vos

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func startTest(t *testing.T) *Server {
	t.Helper()
	s, err := Start(Config{
		Name: "HT9", HTTP: "127.0.0.1:0", HTTPS: "127.0.0.1:0", Control: "127.0.0.1:0", Agent: "127.0.0.1:0",
		MediaPorts: []uint16{0}, MediaHost: "127.0.0.1", UDPAddrs: []netip.Addr{loopback},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func client() *http.Client {
	return &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed test server
			DisableKeepAlives: true,
		},
	}
}

func get(t *testing.T, url string) (int, string, error) {
	t.Helper()
	resp, err := client().Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func post(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := client().Post(url, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestWhoAnswers(t *testing.T) {
	s := startTest(t)
	for _, url := range []string{
		"http://" + s.HTTPAddr().String() + "/",
		"https://" + s.HTTPSAddr().String() + "/anything",
	} {
		code, body, err := get(t, url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		if code != 200 || !strings.HasPrefix(body, "server=HT9 client=127.0.0.1:") || !strings.HasSuffix(body, "\n") {
			t.Errorf("GET %s = %d %q, want 200 server=HT9 client=127.0.0.1:PORT", url, code, body)
		}
	}
}

func TestAdminStatusModes(t *testing.T) {
	s := startTest(t)
	ctl := "http://" + s.ControlAddr().String()
	status := "https://" + s.HTTPSAddr().String() + "/admin/status"
	tests := []struct {
		mode     Mode
		wantErr  bool // the request fails (hang: timeout; garbage: malformed response)
		wantBody string
		minTime  time.Duration
	}{
		{Healthy, false, "Healthy\n", 0},
		{Unhealthy, false, "Unhealthy\n", 0},
		{Hang, true, "", 0},
		{Garbage, true, "", 0},
		{Slow, false, "Healthy\n", 6 * time.Second},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			if code, body := post(t, ctl+"/status?mode="+string(tt.mode)); code != 200 || body != "mode="+string(tt.mode)+"\n" {
				t.Fatalf("POST /status = %d %q", code, body)
			}
			c := client()
			c.Timeout = 1500 * time.Millisecond
			if tt.mode == Slow {
				c.Timeout = 15 * time.Second
			}
			start := time.Now()
			resp, err := c.Get(status)
			var body string
			if err == nil {
				b, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				body, err = string(b), rerr
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("GET /admin/status: err=%v body=%q, want error %v", err, body, tt.wantErr)
			}
			if body != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
			if d := time.Since(start); d < tt.minTime {
				t.Errorf("answered in %v, want at least %v", d, tt.minTime)
			}
		})
	}
	if code, _ := post(t, ctl+"/status?mode=bogus"); code != http.StatusBadRequest {
		t.Errorf("POST /status?mode=bogus = %d, want 400", code)
	}
}

func TestGarbageIsNotHTTP(t *testing.T) {
	s := startTest(t)
	s.SetMode(Garbage)
	c, err := net.Dial("tcp", s.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(c, "GET /admin/status HTTP/1.1\r\nHost: x\r\n\r\n")
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != GarbageReply {
		t.Errorf("got %q, want %q", b, GarbageReply)
	}
}

func TestMediaAndStats(t *testing.T) {
	s := startTest(t)
	tcp := s.TCPAddrs()[0]
	c, err := net.Dial("tcp", tcp.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	want := "server=HT9 client=" + c.LocalAddr().String() + "\n"
	r := bufio.NewReader(c)
	for _, line := range []string{"hello\n", "second line\n"} {
		io.WriteString(c, line)
		got, err := r.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("tcp reply %q, %v; want %q", got, err, want)
		}
	}

	udp := s.UDPAddrs()
	if len(udp) != 1 {
		t.Fatalf("udp sockets %v, want 1", udp)
	}
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(3 * time.Second))
	for range 3 {
		if _, err := u.WriteToUDPAddrPort([]byte("ping"), udp[0]); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 200)
		n, from, err := u.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		if from != udp[0] {
			t.Errorf("udp reply from %v, want %v", from, udp[0])
		}
		if want := "server=HT9 client=" + u.LocalAddr().String() + "\n"; string(buf[:n]) != want {
			t.Errorf("udp reply %q, want %q", buf[:n], want)
		}
	}

	code, body, err := get(t, "http://"+s.ControlAddr().String()+"/stats")
	if err != nil || code != 200 {
		t.Fatalf("GET /stats: %d %v", code, err)
	}
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("decode stats %q: %v", body, err)
	}
	tcpKey := "tcp/" + itoa(tcp.Port())
	udpKey := "udp/" + itoa(udp[0].Port())
	if got := st.Ports[tcpKey]["127.0.0.1"]; got != (Counter{Packets: 2, Bytes: 18, Conns: 1}) {
		t.Errorf("stats %s = %+v, want 2 packets, 18 bytes, 1 conn (all: %s)", tcpKey, got, body)
	}
	if got := st.Ports[udpKey]["127.0.0.1"]; got != (Counter{Packets: 3, Bytes: 12}) {
		t.Errorf("stats %s = %+v, want 3 packets, 12 bytes (all: %s)", udpKey, got, body)
	}
	if st.Server != "HT9" || st.Mode != Healthy {
		t.Errorf("stats server %q mode %q", st.Server, st.Mode)
	}
	if code, _ := post(t, "http://"+s.ControlAddr().String()+"/stats/reset"); code != 200 {
		t.Errorf("reset: %d", code)
	}
	if st := s.Stats(); len(st.Ports) != 0 {
		t.Errorf("after reset: %+v", st.Ports)
	}
}

func TestShutdownEndsHangingRequests(t *testing.T) {
	s, err := Start(Config{Name: "X", HTTP: "127.0.0.1:0", MediaPorts: []uint16{0}, MediaHost: "127.0.0.1", UDPAddrs: []netip.Addr{loopback}, Mode: Hang})
	if err != nil {
		t.Fatal(err)
	}
	go get(t, "http://"+s.HTTPAddr().String()+"/admin/status") //nolint:errcheck // ended by shutdown
	c, err := net.Dial("tcp", s.TCPAddrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("media connection after shutdown: read error %v, want EOF", err)
	}
}

func TestParseMode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Mode
		err  bool
	}{{"healthy", Healthy, false}, {"slow", Slow, false}, {"garbage", Garbage, false}, {"Healthy", "", true}, {"", "", true}} {
		got, err := ParseMode(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("ParseMode(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }
