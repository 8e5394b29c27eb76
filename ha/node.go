package ha

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/internal/atomicfile"
	"github.com/medialb/medialb/netif"
	"github.com/medialb/medialb/tables"
)

// Roles a node reports.
const (
	RoleMaster  = "master"  // holds the VIPs
	RoleBackup  = "backup"  // ready to take them over
	RoleFault   = "fault"   // keepalived's FAULT: medialb unhealthy, VIPs released
	RoleStopped = "stopped" // keepalived is not running
)

// Peer states besides the peer's own role.
const (
	PeerUnknown     = "unknown"     // never heard of
	PeerUnreachable = "unreachable" // no sync heartbeat for PeerTimeout
)

// PeerTimeout is how long without a heartbeat makes the peer unreachable.
const PeerTimeout = 1500 * time.Millisecond

// Tables are the persistence tables the sync channel exports and imports:
// the snapshot in force and the persistence clock (seconds).
type Tables interface {
	Load() *tables.Snapshot
}

// Admin gives and applies operators' states (drain, halt; online is the absence
// of an entry), keyed "service/server".
type Admin interface {
	AdminStates() map[string]string
	ApplyAdminStates(states map[string]string)
}

// Options configure a Node.
type Options struct {
	HA        config.HA
	Node      string       // node.name
	Interface string       // node.interface
	StateDir  string       // node.state_dir: keepalived's files live in StateDir/ha
	VIPs      []netip.Addr // the addresses keepalived brings up on the master
	// Local is this node's own address on Interface, of ha.peer's family: the
	// sync channel listens on it (never on a VIP) and dials the peer from it,
	// and keepalived sends its adverts from it. Zero: looked up (netif.OwnAddr).
	Local netip.Addr
	// Keepalived is the keepalived binary; default "keepalived" in PATH.
	Keepalived string
	// Health reports whether this node can serve (dataplane attached, workers
	// alive); polled every advertisement interval. A false value puts keepalived
	// in FAULT, which releases the VIPs to the peer. nil: always healthy.
	Health func() (ok bool, reason string)
	// OnMaster runs when this node becomes master (to announce the VIPs).
	OnMaster func()
	// Tables and Clock feed the persistence sync; nil Tables: no sync.
	Tables Tables
	Clock  func() uint32
	// Admin feeds the administrative-state sync; nil: no sync.
	Admin Admin
	// StartupWait bounds how long keepalived waits at start for the peer's
	// sync hello when preemption is off (coldstart.go); 0: DefaultStartupWait.
	StartupWait time.Duration
	Log         zerolog.Logger
}

// Status is what the overview and the metrics show.
type Status struct {
	Role         string
	Priority     int // keepalived's reported priority, 0 before the first report
	Peer         netip.Addr
	PeerState    string
	LastFailover time.Time // when this node last became or stopped being master
	Cause        string    // why
	Failovers    uint64    // role changes to or from master
	Imported     uint64    // persistence entries taken from the peer
	Refused      uint64    // connections to the sync port closed at accept
	Exported     uint64    // persistence entries sent to the peer
}

// Node runs keepalived for the pair, follows its role and keeps the sync
// channel to the peer. Its methods are safe for concurrent use.
type Node struct {
	opts   Options
	log    zerolog.Logger
	dir    string
	fifo   *os.File
	sup    *supervisor
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sync   *syncer
	gate   *startGate // holds keepalived's first start (coldstart.go); nil with preempt
	health string     // the health file

	mu       sync.Mutex
	cur      config.HA // the ha section in force (PrepareReload compares with it)
	st       Status
	settings KeepalivedSettings
	healthy  bool
	reason   string
	peerSeen time.Time
	peerGone time.Time // when the peer's sync connection last closed
	peerRole string
	roleCh   chan struct{} // closed and replaced at every role change
}

// Start writes the keepalived configuration, starts keepalived and the sync
// channel. The node starts as backup: keepalived makes the higher priority master
// once the master-down interval passes without an advertisement.
func Start(opts Options) (*Node, error) {
	if opts.Keepalived == "" {
		opts.Keepalived = "keepalived"
	}
	bin, err := exec.LookPath(opts.Keepalived)
	if err != nil {
		return nil, fmt.Errorf("find keepalived: %w (apt-get install keepalived; do not enable its service)", err)
	}
	if !opts.Local.IsValid() {
		if opts.Local, err = netif.OwnAddr(opts.Interface, opts.HA.Peer, opts.VIPs); err != nil {
			return nil, fmt.Errorf("start HA: %w", err)
		}
	}
	dir := filepath.Join(opts.StateDir, "ha")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		opts: opts, log: opts.Log.With().Str("part", "ha").Logger(), dir: dir,
		ctx: ctx, cancel: cancel, health: filepath.Join(dir, "health"),
		sup:    newSupervisor(bin, dir, opts.Log),
		roleCh: make(chan struct{}),
	}
	n.cur = opts.HA
	n.st = Status{Role: RoleBackup, Priority: int(opts.HA.Priority), Peer: opts.HA.Peer, PeerState: PeerUnknown}
	n.settings = KeepalivedSettings{
		Node: opts.Node, Interface: opts.Interface, Peer: opts.HA.Peer, Local: opts.Local, Priority: opts.HA.Priority,
		RouterID: opts.HA.RouterID, Advert: opts.HA.AdvertInterval, Preempt: opts.HA.Preempt,
		VIPs: opts.VIPs, FIFO: filepath.Join(dir, "notify.fifo"), Health: n.health,
	}
	ok := true
	if opts.Health != nil {
		ok, n.reason = opts.Health()
	}
	n.healthy = ok
	if err := n.writeHealth(ok); err != nil {
		cancel()
		return nil, err
	}
	if err := n.openFIFO(); err != nil {
		cancel()
		return nil, err
	}
	if err := n.sup.writeConfig(RenderKeepalived(n.settings)); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.sup.check(); err != nil {
		n.Close()
		return nil, err
	}
	if opts.Tables != nil || opts.Admin != nil {
		s, err := newSyncer(n, opts.HA)
		if err != nil {
			n.Close()
			return nil, err
		}
		n.sync = s
	}
	n.sup.beforeStart = n.dropStale
	if !opts.HA.Preempt && n.sync != nil {
		n.holdStart(cmp.Or(opts.StartupWait, DefaultStartupWait))
	}
	n.wg.Add(3)
	go func() { defer n.wg.Done(); n.readFIFO() }()
	go func() { defer n.wg.Done(); n.sup.run(ctx) }()
	go func() { defer n.wg.Done(); n.watchHealth() }()
	if n.sync != nil {
		n.sync.start(ctx, &n.wg)
	}
	n.log.Info().Str("peer", opts.HA.Peer.String()).Int("priority", int(opts.HA.Priority)).
		Int("router_id", int(opts.HA.RouterID)).Dur("advert_interval", opts.HA.AdvertInterval).
		Bool("preempt", opts.HA.Preempt).Msg("HA: keepalived runs the VIPs; starting as backup")
	return n, nil
}

// dropStale removes VIPs left on the interface by a keepalived that could not
// release them; keepalived starts as BACKUP and adds them again if it becomes
// master.
func (n *Node) dropStale() {
	n.mu.Lock()
	vips := n.settings.VIPs
	n.mu.Unlock()
	removed, err := dropStaleVIPs(n.opts.Interface, vips)
	if err != nil {
		n.log.Error().Err(err).Msg("HA: stale VIPs not removed; both nodes may answer for them")
	}
	if len(removed) > 0 {
		n.log.Warn().Str("vips", fmt.Sprint(removed)).Msg("HA: removed VIPs left by a keepalived that was killed")
	}
	// keepalived starts as BACKUP. A keepalived killed while master could not
	// tell (no FIFO line): record the change here.
	n.mu.Lock()
	was := n.st.Role
	n.st.Role = RoleBackup
	if was == RoleMaster {
		n.st.LastFailover, n.st.Cause = time.Now(), "keepalived died while master; restarted as backup"
		n.st.Failovers++
	}
	n.mu.Unlock()
	if was == RoleMaster {
		n.log.Warn().Str("role", RoleBackup).Str("was", was).Msg("HA role changed")
	}
}

// Status returns the node's role and what it knows of its peer.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.st
	st.PeerState = n.peerStateLocked()
	if n.sync != nil {
		st.Imported, st.Exported = n.sync.imported.Load(), n.sync.exported.Load()
		st.Refused = n.sync.refused.Load()
	}
	return st
}

func (n *Node) peerStateLocked() string {
	switch {
	case n.peerSeen.IsZero():
		return PeerUnknown
	case time.Since(n.peerSeen) > PeerTimeout:
		return PeerUnreachable
	}
	return n.peerRole
}

// Role returns the current role.
func (n *Node) Role() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st.Role
}

// KeepalivedPid returns the running keepalived's process id, 0 if none.
func (n *Node) KeepalivedPid() int { return n.sup.Pid() }

// AdminChanged tells the node an operator changed an administrative state here,
// so that a master pushes the new states to its peer at once.
func (n *Node) AdminChanged() {
	if s := n.syncer(); s != nil {
		s.kickAdmin()
	}
}

// syncer returns the sync channel in force (a reload may replace it), nil without.
func (n *Node) syncer() *syncer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sync
}

// Close stops keepalived (which releases the VIPs and tells the peer with a
// priority-0 advertisement) and the sync channel.
func (n *Node) Close() error {
	n.cancel()
	if s := n.syncer(); s != nil {
		s.close()
	}
	if n.fifo != nil {
		n.fifo.Close()
	}
	n.wg.Wait()
	return nil
}

// openFIFO makes the notify FIFO keepalived writes state changes to. It is
// opened read-write so that it never reads end-of-file between writers.
func (n *Node) openFIFO() error {
	p := n.settings.FIFO
	_ = os.Remove(p)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		return fmt.Errorf("create notify FIFO %s: %w", p, err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open notify FIFO %s: %w", p, err)
	}
	n.fifo = f
	return nil
}

// readFIFO follows keepalived's notifications: lines such as
// `INSTANCE "medialb" MASTER 150`.
func (n *Node) readFIFO() {
	sc := bufio.NewScanner(n.fifo)
	for sc.Scan() {
		kind, name, state, prio, ok := ParseNotify(sc.Text())
		if !ok || kind != "INSTANCE" || name != Instance {
			continue
		}
		n.setRole(state, prio)
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		n.log.Error().Err(err).Msg("HA: notify FIFO read failed; role no longer followed")
	}
}

// ParseNotify reads one keepalived notify_fifo line: kind (INSTANCE, GROUP,
// ...), the quoted name, the state (MASTER, BACKUP, FAULT, STOP) and the priority.
func ParseNotify(line string) (kind, name, state string, prio int, ok bool) {
	line = strings.TrimSpace(line)
	kind, rest, found := strings.Cut(line, " ")
	if !found || !strings.HasPrefix(rest, `"`) {
		return "", "", "", 0, false
	}
	name, rest, found = strings.Cut(rest[1:], `"`)
	if !found {
		return "", "", "", 0, false
	}
	f := strings.Fields(rest)
	if len(f) < 1 {
		return "", "", "", 0, false
	}
	state = f[0]
	if len(f) > 1 {
		p, err := strconv.Atoi(f[1])
		if err != nil {
			return "", "", "", 0, false
		}
		prio = p
	}
	return kind, name, state, prio, true
}

// setRole records keepalived's state for our instance.
func (n *Node) setRole(state string, prio int) {
	role := map[string]string{"MASTER": RoleMaster, "BACKUP": RoleBackup, "FAULT": RoleFault, "STOP": RoleStopped}[state]
	if role == "" {
		return
	}
	n.mu.Lock()
	prev := n.st.Role
	n.st.Role, n.st.Priority = role, prio
	var cause string
	if (prev == RoleMaster) != (role == RoleMaster) {
		peer := n.peerStateLocked()
		switch {
		case role == RoleMaster:
			cause = n.masterCauseLocked(peer)
		case role == RoleFault && !n.healthy:
			cause = "this node unhealthy: " + n.reason
		case role == RoleFault:
			cause = "keepalived reported FAULT (interface down?)"
		case role == RoleStopped:
			cause = "keepalived stopped"
		default:
			cause = "peer took the VIPs (peer " + peer + ")"
		}
		n.st.LastFailover, n.st.Cause = time.Now(), cause
		n.st.Failovers++
	}
	close(n.roleCh)
	n.roleCh = make(chan struct{})
	n.mu.Unlock()
	if prev == role {
		return
	}
	ev := n.log.Info().Str("role", role).Str("was", prev).Int("priority", prio)
	if cause != "" {
		ev = ev.Str("cause", cause)
	}
	ev.Msg("HA role changed")
	if role == RoleMaster && n.opts.OnMaster != nil {
		n.opts.OnMaster()
	}
	if s := n.syncer(); s != nil {
		s.kickAdmin()
	}
}

// masterCauseLocked says why this node became master, from what the sync
// channel last saw of the peer.
func (n *Node) masterCauseLocked(peer string) string {
	now := time.Now()
	switch {
	case !n.peerGone.IsZero() && !n.peerGone.Before(n.peerSeen) && now.Sub(n.peerGone) < 2*time.Second:
		return "peer medialb stopped (its sync connection closed)"
	case n.peerSeen.IsZero():
		return "no master heard (peer never seen)"
	case now.Sub(n.peerSeen) > HeartbeatInterval*3/2:
		return fmt.Sprintf("peer silent for %s (hung, crashed or cut off)", now.Sub(n.peerSeen).Round(time.Millisecond))
	case peer == RoleMaster:
		return "peer released the VIPs"
	}
	return "no master on the segment (peer " + peer + ")"
}

// WaitRole waits until the role is role or ctx is done.
func (n *Node) WaitRole(ctx context.Context, role string) error {
	for {
		n.mu.Lock()
		cur, ch := n.st.Role, n.roleCh
		n.mu.Unlock()
		if cur == role {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for HA role %s (now %s): %w", role, cur, ctx.Err())
		}
	}
}

// watchHealth polls the node's health every advertisement interval and writes
// the track file keepalived follows when it changes. A write that fails (state_dir
// full or read-only) is retried every interval until it succeeds; meanwhile an
// unhealthy node stops keepalived, which releases the VIPs to the peer, since the
// track file cannot tell it to. keepalived starts again once the file is written.
func (n *Node) watchHealth() {
	if n.opts.Health == nil {
		return
	}
	t := time.NewTicker(max(n.opts.HA.AdvertInterval, 50*time.Millisecond))
	defer t.Stop()
	n.mu.Lock()
	inFile := n.healthy // what the track file says (Start wrote it)
	n.mu.Unlock()
	stale := false // a write failed: the file may not say what n.healthy says
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		ok, reason := n.opts.Health()
		n.mu.Lock()
		changed := ok != n.healthy
		n.healthy, n.reason = ok, reason
		n.mu.Unlock()
		if changed && ok {
			n.log.Info().Msg("HA: this node is healthy again; keepalived may make it master")
		} else if changed {
			n.log.Error().Str("reason", reason).Msg("HA: this node is unhealthy; keepalived releases the VIPs to the peer")
		}
		if ok != inFile {
			if err := n.writeHealth(ok); err != nil {
				if !stale {
					n.log.Error().Err(err).Bool("healthy", ok).
						Msg("HA: health not passed to keepalived; retrying every advertisement interval (free or fix node.state_dir)")
				}
				stale = true
				if !ok && n.sup != nil && n.sup.hold(true) {
					n.log.Error().Msg("HA: keepalived stopped so that the VIPs go to the peer: this unhealthy node cannot tell it through the health file")
				}
				continue
			}
			inFile = ok
		}
		if stale {
			n.log.Info().Bool("healthy", ok).Msg("HA: the health file says this node's health again")
			stale = false
		}
		if n.sup != nil && n.sup.hold(false) {
			n.log.Info().Msg("HA: keepalived starts again; the health file tells it this node's health")
		}
	}
}

// writeHealth writes the track file: 0 healthy, 1 not (keepalived: FAULT).
func (n *Node) writeHealth(ok bool) error {
	v := "1\n"
	if ok {
		v = "0\n"
	}
	if err := atomicfile.Write(n.health, []byte(v), 0o600); err != nil {
		return fmt.Errorf("write HA health file: %w", err)
	}
	return nil
}
