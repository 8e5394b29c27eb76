package cdp

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// fakeBrowser is a DevTools endpoint of a page: /json/list and a websocket that
// answers Runtime.evaluate with the expression's length, sends an event first, pings
// the client and fragments its answers.
type fakeBrowser struct {
	t      *testing.T
	accept func(key string) string // the Sec-WebSocket-Accept to send
	pong   chan string
}

func (f *fakeBrowser) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/json/list":
		fmt.Fprintf(w, `[{"type":"service_worker","webSocketDebuggerUrl":"ws://%s/nope"},{"type":"page","webSocketDebuggerUrl":"ws://%s/devtools/page/1"}]`, r.Host, r.Host)
		return
	case "/devtools/page/1":
	default:
		http.NotFound(w, r)
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	conn, rw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		f.t.Error(err)
		return
	}
	defer conn.Close()
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", f.accept(key))
	rw.Flush()
	send := func(opcode byte, fin bool, p []byte) {
		b0 := opcode
		if fin {
			b0 |= 0x80
		}
		hdr := []byte{b0}
		switch n := len(p); {
		case n < 126:
			hdr = append(hdr, byte(n))
		default:
			hdr = append(hdr, 126)
			hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
		}
		conn.Write(append(hdr, p...))
	}
	send(0x9, true, []byte("are you there"))
	for {
		op, msg, err := readClientFrame(rw.Reader)
		if err != nil {
			return
		}
		switch op {
		case 0xa:
			f.pong <- string(msg)
			continue
		case 0x8:
			return
		}
		var req struct {
			ID     int
			Method string
			Params struct{ Expression string }
		}
		if err := json.Unmarshal(msg, &req); err != nil {
			f.t.Errorf("client sent %q: %v", msg, err)
			return
		}
		send(0x1, true, []byte(`{"method":"Page.loadEventFired","params":{"timestamp":1}}`))
		var answer string
		if req.Method == "Runtime.evaluate" {
			answer = fmt.Sprintf(`{"id":%d,"result":{"result":{"type":"number","value":%d}}}`, req.ID, len(req.Params.Expression))
		} else {
			answer = fmt.Sprintf(`{"id":%d,"error":{"code":-32601,"message":"'%s' wasn't found"}}`, req.ID, req.Method)
		}
		// In two fragments, the second large enough for a 16-bit length.
		answer += strings.Repeat(" ", 200)
		send(0x1, false, []byte(answer[:10]))
		send(0x0, true, []byte(answer[10:]))
	}
}

// readClientFrame reads one frame and checks that it is masked, as clients must.
func readClientFrame(r *bufio.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 == 0 {
		return 0, nil, fmt.Errorf("unmasked client frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		io.ReadFull(r, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		io.ReadFull(r, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	var mask [4]byte
	io.ReadFull(r, mask[:])
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	for i := range p {
		p[i] ^= mask[i%4]
	}
	return h[0] & 0x0f, p, nil
}

func goodAccept(key string) string {
	sum := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func TestClient(t *testing.T) {
	f := &fakeBrowser{t: t, accept: goodAccept, pong: make(chan string, 1)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := AttachPage(ctx, port, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case p := <-f.pong:
		if p != "are you there" {
			t.Errorf("pong %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Error("no pong to the ping")
	}
	for _, tc := range []struct {
		expr string
		want int
	}{{"1+1", 3}, {strings.Repeat("x", 300), 300}, {strings.Repeat("y", 70000), 70000}} {
		var got int
		if err := c.Eval(ctx, tc.expr, &got); err != nil || got != tc.want {
			t.Errorf("Eval(%d bytes) = %d, %v; want %d", len(tc.expr), got, err, tc.want)
		}
	}
	if err := c.Call(ctx, "No.such", nil, nil); err == nil || !strings.Contains(err.Error(), "wasn't found") {
		t.Errorf("Call of an unknown method: %v", err)
	}
	select {
	case m := <-c.Events():
		if m.Method != "Page.loadEventFired" {
			t.Errorf("event %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Error("no event")
	}
}

func TestDialRefusesBadHandshake(t *testing.T) {
	f := &fakeBrowser{t: t, accept: func(string) string { return "wrong" }, pong: make(chan string, 1)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	host := srv.Listener.Addr().String()
	for _, u := range []string{"ws://" + host + "/devtools/page/1", "ws://" + host + "/elsewhere", "wss://" + host + "/devtools/page/1"} {
		if c, err := Dial(ctx, u, nil); err == nil {
			c.Close()
			t.Errorf("Dial(%s) succeeded", u)
		}
	}
}

func TestActivePort(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := ActivePort(ctx, dir); err == nil {
		t.Fatal("ActivePort without the file succeeded")
	}
	if err := os.WriteFile(dir+"/DevToolsActivePort", []byte("40123\n/devtools/browser/abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if port, err := ActivePort(ctx2, dir); err != nil || port != "40123" {
		t.Fatalf("ActivePort = %q, %v", port, err)
	}
}
