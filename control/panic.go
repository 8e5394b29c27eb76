package control

import (
	"time"
)

// Panic threshold: when more than a service's config.Service.PanicThreshold percent
// of its real servers fail their health checks without an answer (timeouts,
// unreachable) within one check interval, the likelier culprit is this node (its
// receive path saturated, so the replies to the checks die here), not the servers.
// The controller then keeps those servers in service, logs and counts it, and the
// overview shows it, until their checks pass again. So that no server goes down in
// the moments before the threshold is crossed, a failure without an answer is held
// for one window (check interval plus timeout) before it takes its server out: a
// server that really stopped answering goes down that much later. A failure that is an answer
// (refused, a wrong status or body) still takes its server out at once, panic or
// not: a server that really fails during a surge is still taken out. Envoy's panic
// threshold is the model: past it, traffic goes to all servers.

// PanicStatus is a service's panic state.
type PanicStatus struct {
	Active bool      // servers are kept in service although their checks fail
	Since  time.Time // when the current (or last) panic began
	Count  uint64    // panics since the controller started
	Kept   []string  // the servers kept in service, in no particular order
}

// panicState is a service's panic bookkeeping.
type panicState struct {
	noAnswer map[string]time.Time // server -> when its check failed without an answer
	kept     map[string]bool      // servers kept in service by the panic
	pending  map[string]string    // server -> reason: a failure held for one window
	active   bool
	since    time.Time
	count    uint64
}

// panicLocked returns the bookkeeping of a service, creating it.
func (c *Controller) panicLocked(service string) *panicState {
	if c.panics == nil {
		c.panics = map[string]*panicState{}
	}
	ps := c.panics[service]
	if ps == nil {
		ps = &panicState{noAnswer: map[string]time.Time{}, kept: map[string]bool{}, pending: map[string]string{}}
		c.panics[service] = ps
	}
	return ps
}

// Panic returns the panic state of a service (zero when it never panicked).
func (c *Controller) Panic(service string) PanicStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := c.panics[service]
	if ps == nil {
		return PanicStatus{}
	}
	st := PanicStatus{Active: ps.active, Since: ps.since, Count: ps.count}
	for s := range ps.kept {
		st.Kept = append(st.Kept, s)
	}
	return st
}

// keptLocked reports whether the panic keeps server k in service.
func (c *Controller) keptLocked(k Key) bool {
	ps := c.panics[k.Service]
	return ps != nil && ps.active && ps.kept[k.Server]
}

// Verdicts of panicCheckLocked.
const (
	applyNow     = iota // apply the health verdict as it is
	applyRebuild        // apply it, and rebuild: the panic stopped keeping the server
	keepPanic           // a failure the panic keeps in service
	holdDown            // a failure held for one window (see holdLocked)
)

// panicCheckLocked updates the panic state of k's service for a health verdict (up,
// noAnswer, reason) seen at now, before it is applied, and says what to do with it.
func (c *Controller) panicCheckLocked(k Key, up, noAnswer bool, reason string, now time.Time) int {
	svc := c.cfg.Service(k.Service)
	if svc == nil {
		return applyNow
	}
	ps := c.panicLocked(k.Service)
	if up || !noAnswer {
		delete(ps.noAnswer, k.Server)
		delete(ps.pending, k.Server)
		verdict := applyNow
		if ps.kept[k.Server] {
			delete(ps.kept, k.Server)
			verdict = applyRebuild
		}
		if ps.active && len(ps.kept) == 0 {
			ps.active = false
			c.log.Warn().Str("service", k.Service).Dur("lasted", now.Sub(ps.since)).
				Msg("panic over: the real servers' health checks are answered again")
		}
		return verdict
	}
	if svc.PanicThreshold <= 0 {
		return applyNow
	}
	ps.noAnswer[k.Server] = now
	window := svc.HealthCheck.Interval + svc.HealthCheck.Timeout
	recent := 0
	for s, t := range ps.noAnswer {
		if now.Sub(t) <= window {
			recent++
		} else if !ps.kept[s] {
			delete(ps.noAnswer, s)
		}
	}
	total := len(svc.RealServers)
	if !ps.active && recent*100 <= svc.PanicThreshold*total {
		ps.pending[k.Server] = reason
		c.holdLocked(k, window)
		return holdDown
	}
	if !ps.active {
		ps.active, ps.since = true, now
		ps.count++
		// Servers whose failure is held, or that went down without an answer
		// moments ago, are kept too.
		for s, t := range ps.noAnswer {
			if now.Sub(t) <= window {
				ps.kept[s] = true
			}
		}
		for s := range ps.pending {
			ps.kept[s] = true
		}
		clear(ps.pending)
		c.log.Error().Str("service", k.Service).Int("failed", recent).Int("servers", total).
			Int("panic_threshold_percent", svc.PanicThreshold).Dur("window", window).
			Msg("PANIC: most real servers stopped answering health checks at once; suspecting this node " +
				"(saturated receive path?), not the servers: keeping them in service. A server that answers " +
				"that it is unwell is still taken out.")
	}
	ps.kept[k.Server] = true
	return keepPanic
}

// holdLocked applies k's held failure after window, unless an answer (or a panic)
// came first.
func (c *Controller) holdLocked(k Key, window time.Duration) {
	time.AfterFunc(window, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		ps := c.panics[k.Service]
		if ps == nil || c.knownLocked(k.Service, k.Server) != nil {
			return
		}
		reason, ok := ps.pending[k.Server]
		if !ok {
			return
		}
		delete(ps.pending, k.Server)
		c.health[k] = Health{Up: false, Checked: true, Reason: reason, Since: time.Now()}
		if err := c.rebuildLocked("health check"); err != nil {
			c.log.Error().Err(err).Msg("health change not applied")
		}
	})
}
