package health

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/tables"
)

// Target is one server to check.
type Target struct {
	// Key names the target in transitions and Status: the real server of a
	// service it checks. Keys are unique within one Set.
	Key tables.Key
	// Addr is the address checked; its port is used unless Spec.Port is set.
	Addr netip.AddrPort
	// Spec says how to check.
	Spec Spec
}

// Transition reports that a target went up or down, or the first result
// of a target.
type Transition struct {
	Key    tables.Key // the target's key
	Up     bool       // the target's new state
	Result Result     // the check that caused the transition
	At     time.Time  // when that check completed
}

// Status is the state of one target.
type Status struct {
	// Up tells whether the target is up. A target starts up but not
	// Checked (see Monitor).
	Up bool
	// Checked tells whether a check has completed since the target was set
	// (or its address or spec last changed).
	Checked bool
	// LastResult is the result of the latest check; its Duration is the
	// check's duration.
	LastResult Result
	// ConsecutiveOK and ConsecutiveFail count the latest passed or failed
	// checks in a row; one of them is zero.
	ConsecutiveOK, ConsecutiveFail int
	// LastChange is when Up last changed, or when the first check decided
	// it; zero before.
	LastChange time.Time
	// LastCheck is when the latest check completed.
	LastCheck time.Time
}

// Monitor checks many targets, each in its own goroutine, applies rise and
// fall, and reports transitions.
//
// Initial state: a new target is up but pending (Status.Up true,
// Status.Checked false), as in HAProxy, so that a reload or a start does not
// take working servers out of service; but unlike HAProxy, the first check
// decides at once: one pass confirms it up, one failure takes it down. After
// that, Rise passed checks in a row bring a down target up and Fall failed
// checks in a row take an up target down. The first result of a target
// always produces a Transition, even when it confirms Up.
//
// Each target's first check starts after a random delay of up to its Jitter;
// later checks start Interval plus a random delay of up to Jitter after the
// start of the previous one, or right after it when a check took longer.
// Checks of one target never overlap, and a slow check delays no other
// target.
//
// A target of type none is up from Set on, is never checked and has no
// goroutine and no transitions.
//
// Monitor is safe for concurrent use. The onChange function may call Status
// and Set, but not Close.
type Monitor struct {
	log      zerolog.Logger
	onChange func(Transition)
	onResult atomic.Pointer[func(key tables.Key, r Result)]

	localErrors   atomic.Uint64 // checks not made: this node out of resources
	lastLocalWarn atomic.Int64  // Unix nanoseconds of the last such error logged

	mu     sync.Mutex
	probes map[tables.Key]*probe
	closed bool

	// emitMu serializes onChange calls, so that a removed target's last
	// transition is delivered before the first one of its replacement.
	emitMu sync.Mutex
	wg     sync.WaitGroup
}

// probe is one target being checked.
type probe struct {
	key     tables.Key
	addr    netip.AddrPort
	spec    Spec // as given, to compare across Set calls
	eff     Spec // with defaults
	checker Checker
	cancel  context.CancelFunc
	stopped atomic.Bool

	mu sync.Mutex
	st Status
}

// NewMonitor returns a Monitor without targets. onChange, if not nil, is
// called for each transition, one call at a time, from the goroutines that
// run the checks; it should return quickly, as the target's next check waits
// for it.
func NewMonitor(log zerolog.Logger, onChange func(Transition)) *Monitor {
	return &Monitor{log: log, onChange: onChange, probes: make(map[tables.Key]*probe)}
}

// OnResult sets f to be called after every check with the target's key and
// the result, e.g. to export the result and duration as metrics. f is called
// from the checks' goroutines, concurrently for different targets. A nil f
// removes it.
func (m *Monitor) OnResult(f func(key tables.Key, r Result)) {
	if f == nil {
		m.onResult.Store(nil)
		return
	}
	m.onResult.Store(&f)
}

// Set makes targets the set of checked targets: it starts checking new
// targets, stops checking removed ones and keeps checking, with their state,
// the targets whose key, address and spec are unchanged. A target whose spec
// changed but not its key and address keeps its Up state until its first
// check under the new spec decides. A target whose spec is invalid is down
// with a reason that says why. Set does not wait for checks to stop, and
// does not call onChange. Set after Close does nothing.
func (m *Monitor) Set(targets []Target) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		m.log.Warn().Msg("health monitor: Set after Close ignored")
		return
	}
	next := make(map[tables.Key]*probe, len(targets))
	checkers := make(map[Spec]checkerOrErr) // targets with one spec share a checker
	for _, t := range targets {
		if _, dup := next[t.Key]; dup {
			m.log.Error().Stringer("target", t.Key).Msg("health monitor: duplicate target key ignored")
			continue
		}
		old := m.probes[t.Key]
		if old != nil && old.addr == t.Addr && old.spec == t.Spec {
			next[t.Key] = old
			continue
		}
		ce, ok := checkers[t.Spec]
		if !ok {
			ce.c, ce.err = NewChecker(t.Spec)
			checkers[t.Spec] = ce
		}
		p := m.newProbe(t, ce)
		if old != nil && old.addr == t.Addr {
			old.mu.Lock()
			p.st.Up, p.st.LastChange = old.st.Up, old.st.LastChange
			old.mu.Unlock()
		}
		next[t.Key] = p
	}
	for key, p := range m.probes {
		if next[key] != p {
			p.stopped.Store(true)
			if p.cancel != nil {
				p.cancel()
			}
		}
	}
	for key, p := range next {
		if m.probes[key] != p && p.checker != nil && p.eff.Type != TypeNone {
			ctx, cancel := context.WithCancel(context.Background())
			p.cancel = cancel
			m.wg.Go(func() { m.run(ctx, p) })
		}
	}
	m.probes = next
}

// checkerOrErr is what NewChecker returned.
type checkerOrErr struct {
	c   Checker
	err error
}

// newProbe returns a probe for t checked by ce, not started.
func (m *Monitor) newProbe(t Target, ce checkerOrErr) *probe {
	p := &probe{key: t.Key, addr: t.Addr, spec: t.Spec, eff: t.Spec.withDefaults()}
	p.st.Up = true
	c, err := ce.c, ce.err
	switch {
	case err != nil:
		now := time.Now()
		p.st = Status{Checked: true, LastResult: Result{Reason: t.Spec.Type + " " + t.Addr.String() + ": " + err.Error()}, LastChange: now, LastCheck: now}
		m.log.Error().Err(err).Stringer("target", t.Key).Msg("health monitor: invalid check, target down")
	case p.eff.Type == TypeNone:
		now := time.Now()
		p.st = Status{Up: true, Checked: true, LastResult: c.Check(context.Background(), t.Addr), LastChange: now, LastCheck: now}
	}
	p.checker = c
	return p
}

// Status returns the state of the target with key, and false if there is
// no such target.
func (m *Monitor) Status(key tables.Key) (Status, bool) {
	m.mu.Lock()
	p := m.probes[key]
	m.mu.Unlock()
	if p == nil {
		return Status{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st, true
}

// Statuses returns the state of every target, by key.
func (m *Monitor) Statuses() map[tables.Key]Status {
	m.mu.Lock()
	probes := make([]*probe, 0, len(m.probes))
	for _, p := range m.probes {
		probes = append(probes, p)
	}
	m.mu.Unlock()
	out := make(map[tables.Key]Status, len(probes))
	for _, p := range probes {
		p.mu.Lock()
		out[p.key] = p.st
		p.mu.Unlock()
	}
	return out
}

// Close stops all checks and waits for them to return. In-flight checks are
// cancelled, not waited out. Close must not be called while holding
// anything that onChange waits for.
func (m *Monitor) Close() {
	m.mu.Lock()
	m.closed = true
	for _, p := range m.probes {
		p.stopped.Store(true)
		if p.cancel != nil {
			p.cancel()
		}
	}
	m.probes = nil
	m.mu.Unlock()
	m.wg.Wait()
}

// run checks p until ctx is done.
func (m *Monitor) run(ctx context.Context, p *probe) {
	timer := time.NewTimer(jitter(p.eff.Jitter))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		r := p.checker.Check(ctx, p.addr)
		if ctx.Err() != nil {
			return // removed or closed: the result is not about the current target
		}
		if r.Local {
			m.local(p.key, r) // the target keeps its last verdict
		} else {
			if f := m.onResult.Load(); f != nil {
				(*f)(p.key, r)
			}
			if tr, ok := p.record(r, time.Now()); ok {
				m.emit(p, tr)
			} else if !r.OK {
				m.log.Debug().Stringer("target", p.key).Str("reason", r.Reason).Msg("health check failed")
			}
		}
		wait := p.eff.Interval + jitter(p.eff.Jitter) - time.Since(start)
		timer.Reset(max(wait, 0))
	}
}

// LocalErrors counts the checks not made because this node was out of file
// descriptors, ports or buffers (Result.Local): their targets kept their last
// verdict.
func (m *Monitor) LocalErrors() uint64 { return m.localErrors.Load() }

// local counts a check that failed for want of this node's resources and logs
// it at error level, at most every localWarnEvery.
func (m *Monitor) local(key tables.Key, r Result) {
	n := m.localErrors.Add(1)
	now := time.Now().UnixNano()
	last := m.lastLocalWarn.Load()
	if now-last < int64(localWarnEvery) || !m.lastLocalWarn.CompareAndSwap(last, now) {
		return
	}
	m.log.Error().Stringer("target", key).Str("reason", r.Reason).Uint64("local_errors", n).
		Msg("health check not made: this node is out of file descriptors, ports or buffers; servers keep their last state (raise LimitNOFILE, lower max_connections)")
}

// localWarnEvery spaces the logs of checks failed for want of local resources.
const localWarnEvery = 5 * time.Second

// record adds r to p's state, and returns the transition it causes, if any.
func (p *probe) record(r Result, now time.Time) (Transition, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := &p.st
	st.LastResult, st.LastCheck = r, now
	if r.OK {
		st.ConsecutiveOK++
		st.ConsecutiveFail = 0
	} else {
		st.ConsecutiveFail++
		st.ConsecutiveOK = 0
	}
	first := !st.Checked
	up := st.Up
	switch {
	case first:
		st.Checked = true
		up = r.OK
	case st.Up && st.ConsecutiveFail >= p.eff.Fall:
		up = false
	case !st.Up && st.ConsecutiveOK >= p.eff.Rise:
		up = true
	}
	if !first && up == st.Up {
		return Transition{}, false
	}
	if up != st.Up || st.LastChange.IsZero() {
		st.LastChange = now
	}
	st.Up = up
	return Transition{Key: p.key, Up: up, Result: r, At: now}, true
}

// emit logs tr and passes it to onChange, unless p was removed.
func (m *Monitor) emit(p *probe, tr Transition) {
	m.emitMu.Lock()
	defer m.emitMu.Unlock()
	if p.stopped.Load() {
		return
	}
	ev := m.log.Info()
	state := "up"
	if !tr.Up {
		ev, state = m.log.Warn(), "down"
	}
	ev.Stringer("target", tr.Key).Str("state", state).Str("reason", tr.Result.Reason).Msg("health state")
	if m.onChange != nil {
		m.onChange(tr)
	}
}

// jitter returns a random duration in [0, j), or 0 when j is not positive.
func jitter(j time.Duration) time.Duration {
	if j <= 0 {
		return 0
	}
	return rand.N(j)
}
