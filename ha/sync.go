package ha

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/tables"
)

// The sync channel: each node dials its peer's sync_port and sends frames; each
// node accepts the peer's connection and reads them. So each direction is one
// TCP connection with one sender. The acceptor opens with a random 16-byte
// nonce; every frame after it is
//
//	type (1) | length (4, big endian) | payload | HMAC-SHA256 (32)
//
// where the HMAC, keyed with ha.secret, covers the nonce, the frame's sequence
// number (1, 2, ... as an 8-byte big-endian word) and type, length and payload:
// a frame from another connection, out of order or altered, fails the check and
// the connection is closed. The payload is not encrypted (it carries client
// addresses and server names; run the pair on a trusted segment).
//
// Before a connection is authenticated it costs little: the listener is on the
// node's own address (never a VIP), closes at once a connection from any
// address but ha.peer, holds at most maxPending of them, gives each
// handshakeTimeout for its first frame, and takes no first frame above
// maxFirstFrame. Larger frames (entries) come only after the first one's MAC
// has been verified, and are read in readChunk pieces, so a header's claimed
// length costs nothing until the bytes arrive.
const (
	msgHello   = 'H' // JSON hello: node, role, healthy; a heartbeat every HeartbeatInterval
	msgEntries = 'P' // persistence entries of one service (binary, see encodeEntries)
	msgAdmin   = 'A' // JSON map "service/server" -> "drain" | "halt": the master's operator states
)

// Sync timing.
const (
	HeartbeatInterval = 100 * time.Millisecond
	// EntriesInterval is how often the master sends the persistence entries seen
	// since the last round (a full table on each new connection).
	EntriesInterval = time.Second
	adminInterval   = 5 * time.Second
	maxPayload      = 16 << 20
	entriesPerFrame = 2048 // 45 KB frames
	nonceLen        = 16
	macLen          = sha256.Size

	// maxPending connections may wait for authentication at once; more are closed.
	maxPending = 4
	// handshakeTimeout bounds the time from accept to the first authenticated frame.
	handshakeTimeout = 2 * time.Second
	// maxFirstFrame is the largest frame taken before the connection is
	// authenticated (a hello is about a hundred bytes).
	maxFirstFrame = 4 << 10
	// readChunk is the most a frame's buffer grows by before the bytes arrive.
	readChunk = 64 << 10
)

// syncer is a node's side of the sync channel.
type syncer struct {
	n        *Node
	peer     string     // host:port to dial
	peerAddr netip.Addr // the only source accepted
	local    netip.Addr // the address listened on and dialled from
	key      []byte
	ln       net.Listener
	kick     chan struct{}
	pending  chan struct{}      // one token per connection not yet authenticated
	cancel   context.CancelFunc // stops the dialer; set by start
	loops    sync.WaitGroup     // serve and dialLoop
	imported atomic.Uint64
	exported atomic.Uint64
	refused  atomic.Uint64 // connections closed at accept: not from the peer, or too many pending
	lastWarn atomic.Int64  // Unix nanoseconds of the last refusal logged

	mu    sync.Mutex
	conns map[net.Conn]bool
	done  bool           // close was called
	recv  sync.WaitGroup // receive goroutines
}

// newSyncer listens on this node's own address (Options.Local) at
// h.sync_port, takes connections from h.peer only, and will dial h.peer at
// h.sync_port from the own address, with h.secret as the key.
func newSyncer(n *Node, h config.HA) (*syncer, error) {
	if l := n.opts.Local; l.IsValid() && l.Unmap().Is4() != h.Peer.Unmap().Is4() {
		return nil, fmt.Errorf("sync with ha.peer %s from this node's address %s: other address families (restart medialb after changing ha.peer's family)", h.Peer, l)
	}
	return newSyncerAt(n, netip.AddrPortFrom(n.opts.Local, h.SyncPort), netip.AddrPortFrom(h.Peer, h.SyncPort), h.Secret)
}

// newSyncerAt listens on listen, this node's own address, takes connections
// from peer's address only and will dial peer from listen's address.
func newSyncerAt(n *Node, listen, peer netip.AddrPort, secret string) (*syncer, error) {
	if !listen.Addr().IsValid() || listen.Addr().IsUnspecified() {
		return nil, fmt.Errorf("listen for HA sync on %s: not this node's own address (the sync port must not answer on the VIPs)", listen)
	}
	ln, err := net.Listen("tcp", listen.String())
	if err != nil {
		return nil, fmt.Errorf("listen for HA sync on %s: %w (ha.sync_port in use?)", listen, err)
	}
	return &syncer{n: n, peer: peer.String(), peerAddr: peer.Addr().Unmap(), local: listen.Addr(),
		key: []byte(secret), ln: ln, kick: make(chan struct{}, 1),
		pending: make(chan struct{}, maxPending), conns: map[net.Conn]bool{}}, nil
}

func (s *syncer) start(ctx context.Context, wg *sync.WaitGroup) {
	ctx, s.cancel = context.WithCancel(ctx)
	wg.Add(2)
	s.loops.Add(2)
	go func() { defer wg.Done(); defer s.loops.Done(); s.serve() }()
	go func() { defer wg.Done(); defer s.loops.Done(); s.dialLoop(ctx) }()
}

// close stops accepting and dialing, closes every connection and waits for the
// receivers (the dialer too when stop is called).
func (s *syncer) close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.ln.Close()
	s.mu.Lock()
	s.done = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.recv.Wait()
}

// track adds (on) or removes a connection that close must close; adding
// after close closes it at once.
func (s *syncer) track(c net.Conn, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case on && s.done:
		c.Close()
	case on:
		s.conns[c] = true
	default:
		delete(s.conns, c)
	}
}

func (s *syncer) kickAdmin() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// serve accepts the peer's connections and closes at once any other: from
// another address, or beyond maxPending waiting for authentication.
func (s *syncer) serve() {
	for {
		c, err := s.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // EMFILE and the like: this node's trouble; keep serving
			s.warn(err, "", "HA sync: accept failed; retrying")
			time.Sleep(100 * time.Millisecond)
			continue
		}
		from, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		if from.Addr().Unmap() != s.peerAddr {
			c.Close()
			s.refused.Add(1)
			s.warn(nil, from.String(), "HA sync: connection from an address other than ha.peer closed")
			continue
		}
		select {
		case s.pending <- struct{}{}:
		default:
			c.Close()
			s.refused.Add(1)
			s.warn(nil, from.String(), "HA sync: too many connections waiting for authentication; closed")
			continue
		}
		s.recv.Add(1)
		go func() { defer s.recv.Done(); s.receive(c) }()
	}
}

// warn logs a refusal at most once a second.
func (s *syncer) warn(err error, from, msg string) {
	now := time.Now().UnixNano()
	last := s.lastWarn.Load()
	if now-last < int64(time.Second) || !s.lastWarn.CompareAndSwap(last, now) {
		return
	}
	s.n.log.Warn().Err(err).Str("from", from).Uint64("refused", s.refused.Load()).Msg(msg)
}

// receive reads one connection's frames and applies them. It holds a pending
// token until the first frame is authenticated.
func (s *syncer) receive(c net.Conn) {
	s.track(c, true)
	defer s.track(c, false)
	defer c.Close()
	authed := false
	defer func() {
		if !authed {
			<-s.pending
		}
	}()
	log := s.n.log.With().Str("from", c.RemoteAddr().String()).Logger()
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	var nonce [nonceLen]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return
	}
	if _, err := c.Write(nonce[:]); err != nil {
		return
	}
	fr := &frameReader{r: bufio.NewReaderSize(c, maxFirstFrame), key: s.key, nonce: nonce, limit: maxFirstFrame}
	for {
		if authed {
			c.SetReadDeadline(time.Now().Add(10 * PeerTimeout))
		}
		typ, payload, err := fr.read()
		if err != nil {
			if authed && !errors.Is(err, errBadMAC) { // an authenticated peer went away
				s.n.mu.Lock()
				s.n.peerGone = time.Now()
				s.n.mu.Unlock()
			}
			if errors.Is(err, errTooLarge) {
				log.Warn().Err(err).Msg("HA sync: frame too large; connection closed")
			}
			if errors.Is(err, errBadMAC) {
				log.Warn().Err(err).Msg("HA sync: frame failed authentication; connection closed (ha.secret differs?)")
			}
			return
		}
		if !authed {
			authed = true
			<-s.pending
			fr.limit = maxPayload
			c.SetDeadline(time.Time{})
		}
		if err := s.apply(typ, payload); err != nil {
			log.Warn().Err(err).Msg("HA sync: frame not applied")
		}
	}
}

type hello struct {
	Node     string `json:"node"`
	Role     string `json:"role"`
	Healthy  bool   `json:"healthy"`
	Priority int    `json:"priority"` // ha.priority; 0 from a medialb before it was sent
}

// apply acts on one authenticated frame.
func (s *syncer) apply(typ byte, payload []byte) error {
	n := s.n
	switch typ {
	case msgHello:
		var h hello
		if err := json.Unmarshal(payload, &h); err != nil {
			return fmt.Errorf("read hello: %w", err)
		}
		n.mu.Lock()
		n.peerSeen, n.peerRole = time.Now(), h.Role
		if !h.Healthy && h.Role != RoleMaster {
			n.peerRole = RoleFault
		}
		n.mu.Unlock()
		n.heardPeer(h)
	case msgEntries:
		name, entries, err := decodeEntries(payload)
		if err != nil {
			return err
		}
		if n.Role() == RoleMaster || n.opts.Tables == nil {
			return nil // the master's own tables are authoritative
		}
		snap := n.opts.Tables.Load()
		if snap == nil {
			return nil
		}
		if svc := snap.Service(name); svc != nil {
			s.imported.Add(uint64(svc.Import(entries, n.opts.Clock())))
		}
	case msgAdmin:
		var m map[string]string
		if err := json.Unmarshal(payload, &m); err != nil {
			return fmt.Errorf("read administrative states: %w", err)
		}
		if n.Role() == RoleMaster || n.opts.Admin == nil {
			return nil
		}
		n.opts.Admin.ApplyAdminStates(m)
	}
	return nil
}

// dialLoop keeps a connection to the peer and sends on it until ctx is done.
func (s *syncer) dialLoop(ctx context.Context) {
	addr := s.peer
	// From the address the peer expects (its ha.peer), never a VIP.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: s.local.AsSlice()}}
	failing := false
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			failing = false
			err = s.send(ctx, c)
		}
		if ctx.Err() != nil {
			return
		}
		if !failing {
			s.n.log.Info().Err(err).Str("peer", addr).Msg("HA sync: no connection to the peer; retrying")
			failing = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// send runs one outgoing connection: heartbeats, and while master, the
// persistence entries and the administrative states.
func (s *syncer) send(ctx context.Context, c net.Conn) error {
	s.track(c, true)
	defer s.track(c, false)
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var nonce [nonceLen]byte
	if _, err := io.ReadFull(c, nonce[:]); err != nil {
		return fmt.Errorf("read nonce: %w", err)
	}
	s.n.log.Info().Str("peer", c.RemoteAddr().String()).Msg("HA sync: connected to the peer")
	fw := &frameWriter{w: bufio.NewWriterSize(c, 64<<10), key: s.key, nonce: nonce}
	write := func(typ byte, p []byte) error {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		return fw.write(typ, p)
	}
	hb := time.NewTicker(HeartbeatInterval)
	defer hb.Stop()
	ent := time.NewTicker(EntriesInterval)
	defer ent.Stop()
	adm := time.NewTicker(adminInterval)
	defer adm.Stop()
	full := true
	sendHello := func() error {
		n := s.n
		n.mu.Lock()
		h := hello{Node: n.opts.Node, Role: n.st.Role, Healthy: n.healthy, Priority: int(n.settings.Priority)}
		n.mu.Unlock()
		p, _ := json.Marshal(h)
		return write(msgHello, p)
	}
	sendAdmin := func() error {
		if s.n.Role() != RoleMaster || s.n.opts.Admin == nil {
			return nil
		}
		p, _ := json.Marshal(s.n.opts.Admin.AdminStates())
		return write(msgAdmin, p)
	}
	if err := sendHello(); err != nil {
		return err
	}
	if err := sendAdmin(); err != nil {
		return err
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-hb.C:
			err = sendHello()
		case <-s.kick:
			err = sendAdmin()
		case <-adm.C:
			err = sendAdmin()
		case <-ent.C:
			err = s.sendEntries(write, full)
			full = false
		}
		if err != nil {
			return err
		}
	}
}

// sendEntries sends, while master, the persistence entries seen in the last
// two seconds (the clock counts whole seconds), or every live one when full.
func (s *syncer) sendEntries(write func(byte, []byte) error, full bool) error {
	n := s.n
	if n.opts.Tables == nil || n.Role() != RoleMaster {
		return nil
	}
	snap := n.opts.Tables.Load()
	if snap == nil {
		return nil
	}
	now := n.opts.Clock()
	maxAge := uint32(2 * EntriesInterval / time.Second)
	if full {
		maxAge = ^uint32(0)
	}
	for _, svc := range snap.Services() {
		var batch []tables.Entry
		var err error
		flush := func() {
			if len(batch) == 0 || err != nil {
				return
			}
			err = write(msgEntries, encodeEntries(svc.Name, batch))
			s.exported.Add(uint64(len(batch)))
			batch = batch[:0]
		}
		svc.Export(now, maxAge, func(e tables.Entry) bool {
			batch = append(batch, e)
			if len(batch) == entriesPerFrame {
				flush()
			}
			return err == nil
		})
		flush()
		if err != nil {
			return err
		}
	}
	return nil
}

var errBadMAC = errors.New("bad HMAC")

// frameWriter writes authenticated frames.
type frameWriter struct {
	w     *bufio.Writer
	key   []byte
	nonce [nonceLen]byte
	seq   uint64
}

func (f *frameWriter) write(typ byte, payload []byte) error {
	if len(payload) > maxPayload {
		return fmt.Errorf("write sync frame: payload of %d bytes above %d", len(payload), maxPayload)
	}
	f.seq++
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	mac := frameMAC(f.key, f.nonce, f.seq, hdr, payload)
	f.w.Write(hdr[:])
	f.w.Write(payload)
	f.w.Write(mac)
	return f.w.Flush()
}

// frameReader reads and checks frames. The payload read returns is valid
// until the next read.
type frameReader struct {
	r     io.Reader
	key   []byte
	nonce [nonceLen]byte
	seq   uint64
	limit uint32 // the largest payload taken; 0: maxPayload
	buf   []byte // reused; grows readChunk at a time as bytes arrive
}

var errTooLarge = errors.New("too large")

func (f *frameReader) read() (typ byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	size, limit := binary.BigEndian.Uint32(hdr[1:]), f.limit
	if limit == 0 {
		limit = maxPayload
	}
	if size > limit {
		return 0, nil, fmt.Errorf("read sync frame %d: payload of %d bytes above %d: %w", f.seq+1, size, limit, errTooLarge)
	}
	need := int(size) + macLen
	f.buf = f.buf[:0]
	for len(f.buf) < need {
		n := min(need-len(f.buf), readChunk)
		f.buf = slices.Grow(f.buf, n)
		got, err := io.ReadFull(f.r, f.buf[len(f.buf):len(f.buf)+n])
		f.buf = f.buf[:len(f.buf)+got]
		if err != nil {
			return 0, nil, err
		}
	}
	payload, mac := f.buf[:size], f.buf[size:]
	f.seq++
	if !hmac.Equal(mac, frameMAC(f.key, f.nonce, f.seq, hdr, payload)) {
		return 0, nil, fmt.Errorf("read sync frame %d: %w", f.seq, errBadMAC)
	}
	return hdr[0], payload, nil
}

func frameMAC(key []byte, nonce [nonceLen]byte, seq uint64, hdr [5]byte, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(nonce[:])
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	m.Write(s[:])
	m.Write(hdr[:])
	m.Write(payload)
	return m.Sum(nil)
}

// encodeEntries is the payload of an entries frame:
//
//	service name: length (2) | bytes
//	server names: count (2) | each: length (2) | bytes
//	entries:      count (4) | each: client (16, IPv4-mapped for IPv4) | server index (2) | age (4)
//
// all big endian.
func encodeEntries(service string, entries []tables.Entry) []byte {
	idx := map[string]uint16{}
	var names []string
	for _, e := range entries {
		if _, ok := idx[e.Server]; !ok {
			idx[e.Server] = uint16(len(names))
			names = append(names, e.Server)
		}
	}
	b := make([]byte, 0, 2+len(service)+2+8*len(names)+4+22*len(entries))
	b = binary.BigEndian.AppendUint16(b, uint16(len(service)))
	b = append(b, service...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(names)))
	for _, n := range names {
		b = binary.BigEndian.AppendUint16(b, uint16(len(n)))
		b = append(b, n...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		a := e.Client.As16()
		b = append(b, a[:]...)
		b = binary.BigEndian.AppendUint16(b, idx[e.Server])
		b = binary.BigEndian.AppendUint32(b, e.Age)
	}
	return b
}

var errShort = errors.New("read sync entries: payload too short")

// decodeEntries reads an entries payload.
func decodeEntries(b []byte) (service string, entries []tables.Entry, err error) {
	str := func() (string, bool) {
		if len(b) < 2 {
			return "", false
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return "", false
		}
		s := string(b[2 : 2+n])
		b = b[2+n:]
		return s, true
	}
	var ok bool
	if service, ok = str(); !ok || len(b) < 2 {
		return "", nil, errShort
	}
	nn := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	names := make([]string, 0, min(nn, 1024))
	for range nn {
		s, ok := str()
		if !ok {
			return "", nil, errShort
		}
		names = append(names, s)
	}
	if len(b) < 4 {
		return "", nil, errShort
	}
	ne := int(binary.BigEndian.Uint32(b))
	b = b[4:]
	if len(b) != ne*22 {
		return "", nil, fmt.Errorf("read sync entries: %d bytes for %d entries, want %d", len(b), ne, ne*22)
	}
	entries = make([]tables.Entry, 0, ne)
	for range ne {
		i := int(binary.BigEndian.Uint16(b[16:]))
		if i >= len(names) {
			return "", nil, fmt.Errorf("read sync entries: server index %d of %d names", i, len(names))
		}
		entries = append(entries, tables.Entry{
			Client: netip.AddrFrom16([16]byte(b[:16])).Unmap(),
			Server: names[i],
			Age:    binary.BigEndian.Uint32(b[18:]),
		})
		b = b[22:]
	}
	return service, entries, nil
}
