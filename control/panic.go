package control

import (
	"time"
)

// Panic threshold: when more than a service's config.Service.PanicThreshold percent
// of its real servers fail their health checks without an answer (timeouts,
// unreachable) within one check interval, the likelier culprit is this node (its
// receive path saturated, so the replies to the checks die here), not the servers.
// The controller then keeps those servers in service, logs and counts it, and the
// overview shows it, until their checks pass again. A failure that is an answer
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
		ps = &panicState{noAnswer: map[string]time.Time{}, kept: map[string]bool{}}
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

// panicCheckLocked updates the panic state of k's service for a health verdict (up,
// noAnswer) seen at now, before it is applied. It reports whether the panic state
// changed in a way the snapshot must see.
func (c *Controller) panicCheckLocked(k Key, up, noAnswer bool, now time.Time) bool {
	svc := c.cfg.Service(k.Service)
	if svc == nil {
		return false
	}
	ps := c.panicLocked(k.Service)
	if up || !noAnswer {
		delete(ps.noAnswer, k.Server)
		changed := ps.kept[k.Server]
		delete(ps.kept, k.Server)
		if ps.active && len(ps.kept) == 0 {
			ps.active = false
			c.log.Warn().Str("service", k.Service).Dur("lasted", now.Sub(ps.since)).
				Msg("panic over: the real servers' health checks are answered again")
		}
		return changed
	}
	if svc.PanicThreshold <= 0 {
		return false
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
		return false
	}
	if !ps.active {
		ps.active, ps.since = true, now
		ps.count++
		// Servers that went down without an answer moments ago are kept too.
		for s, t := range ps.noAnswer {
			if now.Sub(t) <= window {
				ps.kept[s] = true
			}
		}
		c.log.Error().Str("service", k.Service).Int("failed", recent).Int("servers", total).
			Int("panic_threshold_percent", svc.PanicThreshold).Dur("window", window).
			Msg("PANIC: most real servers stopped answering health checks at once; suspecting this node " +
				"(saturated receive path?), not the servers: keeping them in service. A server that answers " +
				"that it is unwell is still taken out.")
	}
	ps.kept[k.Server] = true
	return true
}
