// Package cdp is a small Chrome DevTools Protocol client for medialb's browser tests:
// it finds a Chromium binary, starts it (Launch), gives the flags for a headless
// run with remote debugging, reads the port Chromium chose, and talks JSON-RPC to a
// page over an RFC 6455 websocket (text frames, fragmentation, ping). Connections are
// opened through a DialFunc, so that a browser inside a network namespace of the lab
// can be reached from the test. It is internal and meant for tests only.
package cdp

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DialFunc opens a connection, like net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// DefaultDial dials from the caller's own network namespace.
var DefaultDial DialFunc = (&net.Dialer{}).DialContext

// wsConn is a client websocket connection.
type wsConn struct {
	conn net.Conn
	r    *bufio.Reader
	wmu  sync.Mutex
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func dialWebsocket(ctx context.Context, rawURL string, dial DialFunc) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("dial %s: only ws:// is supported", rawURL)
	}
	conn, err := dial(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", rawURL, err)
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, err
	}
	r := bufio.NewReaderSize(conn, 1<<16)
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, fmt.Errorf("websocket handshake: status %s, accept %q", res.Status, res.Header.Get("Sec-WebSocket-Accept"))
	}
	return &wsConn{conn: conn, r: r}, nil
}

// writeFrame sends one masked frame (clients must mask).
func (c *wsConn) writeFrame(opcode byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	hdr := []byte{0x80 | opcode}
	n := len(payload)
	switch {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xffff:
		hdr = append(hdr, 0x80|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	buf := make([]byte, len(hdr)+n)
	copy(buf, hdr)
	for i, b := range payload {
		buf[len(hdr)+i] = b ^ mask[i%4]
	}
	_, err := c.conn.Write(buf)
	return err
}

// readMessage returns the next text or binary message, answering pings.
func (c *wsConn) readMessage() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			return nil, err
		}
		fin, opcode := h[0]&0x80 != 0, h[0]&0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		var mask [4]byte
		masked := h[1]&0x80 != 0
		if masked {
			if _, err := io.ReadFull(c.r, mask[:]); err != nil {
				return nil, err
			}
		}
		if n > 256<<20 {
			return nil, fmt.Errorf("websocket frame of %d bytes", n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c.r, payload); err != nil {
			return nil, err
		}
		if masked {
			for i := range payload {
				payload[i] ^= mask[i%4]
			}
		}
		switch opcode {
		case 0x8: // close
			return nil, io.EOF
		case 0x9: // ping
			if err := c.writeFrame(0xa, payload); err != nil {
				return nil, err
			}
			continue
		case 0xa: // pong
			continue
		}
		msg = append(msg, payload...)
		if fin {
			return msg, nil
		}
	}
}

func (c *wsConn) Close() error { return c.conn.Close() }

// Message is one DevTools protocol message: an answer (ID set) or an event (Method set).
type Message struct {
	ID     int             `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// Client speaks the DevTools protocol to one target (a page) over a websocket. Its
// methods are safe for concurrent use.
type Client struct {
	ws      *wsConn
	mu      sync.Mutex
	nextID  int
	pending map[int]chan Message
	events  chan Message
	done    chan struct{}
	err     error
}

// Dial connects to a target's webSocketDebuggerUrl (ws:// only) through dial (nil:
// DefaultDial).
func Dial(ctx context.Context, wsURL string, dial DialFunc) (*Client, error) {
	if dial == nil {
		dial = DefaultDial
	}
	ws, err := dialWebsocket(ctx, wsURL, dial)
	if err != nil {
		return nil, err
	}
	c := &Client{ws: ws, pending: map[int]chan Message{}, events: make(chan Message, 1024), done: make(chan struct{})}
	go c.read()
	return c, nil
}

// Events returns the channel of events (messages without an ID). It is closed when
// the connection ends. Events nobody reads in time are dropped (1024 are buffered).
func (c *Client) Events() <-chan Message { return c.events }

func (c *Client) read() {
	defer close(c.done)
	defer close(c.events)
	for {
		data, err := c.ws.readMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		var m Message
		if err := json.Unmarshal(data, &m); err != nil {
			continue
		}
		if m.ID != 0 {
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		select {
		case c.events <- m:
		default: // nobody listens fast enough: drop
		}
	}
}

// Call sends method with params (nil: none) and decodes the result into result (may
// be nil).
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	if params == nil {
		params = struct{}{}
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return fmt.Errorf("%s: connection closed: %w", method, c.err)
	}
	c.nextID++
	id := c.nextID
	ch := make(chan Message, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	data, err := json.Marshal(struct {
		ID     int    `json:"id"`
		Method string `json:"method"`
		Params any    `json:"params"`
	}{id, method, params})
	if err != nil {
		return fmt.Errorf("encode %s: %w", method, err)
	}
	if err := c.ws.writeFrame(0x1, data); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: connection closed", method)
		}
		if m.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// Eval runs a JavaScript expression in the page and decodes its value (awaiting
// promises) into out (may be nil).
func (c *Client) Eval(ctx context.Context, expr string, out any) error {
	var res struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := c.Call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if err != nil {
		return err
	}
	if e := res.ExceptionDetails; e != nil {
		return fmt.Errorf("evaluate %q: %s %s", expr, e.Text, e.Exception.Description)
	}
	if out == nil {
		return nil
	}
	if len(res.Result.Value) == 0 {
		return errors.New("evaluate " + expr + ": no value (" + res.Result.Type + ")")
	}
	return json.Unmarshal(res.Result.Value, out)
}

// WaitFor evaluates a boolean expression every 100 ms until it is true or timeout
// passes; what names the condition in the error.
func (c *Client) WaitFor(ctx context.Context, what, expr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		var ok bool
		err := c.Eval(ctx, expr, &ok)
		if err == nil && ok {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Click presses the left mouse button on the centre of the element matching the CSS
// selector sel, as a user would: the element is scrolled into view and must be on
// top at that point.
func (c *Client) Click(ctx context.Context, sel string) error {
	var pt struct {
		X, Y  float64
		Hit   bool
		Found bool
	}
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return {found: false};
		e.scrollIntoView({block: 'center'});
		const r = e.getBoundingClientRect(); const x = r.x + r.width/2, y = r.y + r.height/2;
		const top = document.elementFromPoint(x, y);
		return {x, y, hit: top === e || e.contains(top), found: true}; })()`, sel)
	if err := c.Eval(ctx, js, &pt); err != nil {
		return fmt.Errorf("click %s: %w", sel, err)
	}
	if !pt.Found {
		return fmt.Errorf("click %s: no such element on the page", sel)
	}
	if !pt.Hit {
		return fmt.Errorf("click %s: covered by another element at (%.0f, %.0f)", sel, pt.X, pt.Y)
	}
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		err := c.Call(ctx, "Input.dispatchMouseEvent", map[string]any{"type": typ, "x": pt.X, "y": pt.Y, "button": "left", "clickCount": 1}, nil)
		if err != nil {
			return fmt.Errorf("click %s: %w", sel, err)
		}
	}
	return nil
}

// Screenshot captures the whole page as PNG.
func (c *Client) Screenshot(ctx context.Context) ([]byte, error) {
	var shot struct{ Data string }
	if err := c.Call(ctx, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &shot); err != nil {
		return nil, err
	}
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		return nil, fmt.Errorf("decode screenshot: %w", err)
	}
	return png, nil
}

// Close closes the connection and waits for its reader to stop.
func (c *Client) Close() error {
	err := c.ws.Close()
	<-c.done
	return err
}

// Find returns the path of a Chromium (or Chrome) binary, or false when there is none.
func Find() (string, bool) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// Flags are the command-line flags for a headless run with its profile in the
// directory profile, remote debugging on a port of Chromium's choice (see
// ActivePort), self-signed certificates accepted, and nothing fetched on its own.
func Flags(profile string) []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--ignore-certificate-errors", "--window-size=1280,900",
		"--user-data-dir=" + profile, "--remote-debugging-port=0", "about:blank",
	}
}

// ActivePort waits until Chromium has written the DevTools port to
// DevToolsActivePort in its profile directory and returns it.
func ActivePort(ctx context.Context, profile string) (string, error) {
	path := filepath.Join(profile, "DevToolsActivePort")
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			if len(lines) >= 2 {
				return strings.TrimSpace(lines[0]), nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("read %s: %w (did Chromium start?)", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// AttachPage lists the targets of the browser whose DevTools listen on
// 127.0.0.1:port (as dial sees it; nil: DefaultDial) and connects to the first page.
func AttachPage(ctx context.Context, port string, dial DialFunc) (*Client, error) {
	if dial == nil {
		dial = DefaultDial
	}
	tr := &http.Transport{DialContext: dial}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:"+port+"/json/list", nil)
	if err != nil {
		return nil, err
	}
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("list DevTools targets: %w", err)
	}
	var targets []struct {
		Type, WebSocketDebuggerURL string
	}
	err = json.NewDecoder(res.Body).Decode(&targets)
	res.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("list DevTools targets: %w", err)
	}
	for _, tg := range targets {
		if tg.Type == "page" {
			return Dial(ctx, tg.WebSocketDebuggerURL, dial)
		}
	}
	return nil, fmt.Errorf("list DevTools targets: no page among %+v", targets)
}
