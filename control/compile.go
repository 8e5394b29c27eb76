package control

import (
	"fmt"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/tables"
)

// effectiveLocked merges the operator's state, the health verdict and, at layer 4, the
// MAC address into the state the tables see, with the reason for logs.
func (c *Controller) effectiveLocked(k Key) (tables.State, string) {
	admin, hasAdmin := c.admin[k]
	h := c.health[k]
	agent, agentReason, hasAgent := c.agentStateLocked(k)
	switch {
	case hasAdmin && admin == tables.StateHalt:
		return tables.StateHalt, "halted by operator"
	case hasAgent && agent == tables.StateHalt:
		return agent, agentReason
	case h.Checked && !h.Up && !c.keptLocked(k):
		return tables.StateDown, h.Reason
	case hasAgent && agent == tables.StateDown:
		return agent, agentReason
	case hasAdmin && admin == tables.StateDrain:
		return tables.StateDrain, "drained by operator"
	case hasAgent:
		return agent, agentReason
	}
	if c.keptLocked(k) {
		return tables.StateOnline, "kept in service by the panic threshold: " + h.Reason
	}
	if h.Checked {
		return tables.StateOnline, h.Reason
	}
	return tables.StateOnline, "not checked yet"
}

// rebuildLocked compiles the configuration and states into a snapshot, swaps it in,
// runs the hooks, then logs every state change once with its reason: a change is
// logged only once it is in force (the dataplanes and the fast path see it), so
// whoever reads the log and acts on it never races the swap.
func (c *Controller) rebuildLocked(why string) error {
	spec := tables.Spec{HashSeed: c.cfg.Node.HashSeed}
	var logs []func()
	seen := make(map[Key]bool)
	now := c.clock()
	for i := range c.cfg.Services {
		svc := &c.cfg.Services[i]
		ss := serviceSpec(svc)
		eligible := 0
		for j := range svc.RealServers {
			rs := &svc.RealServers[j]
			k := Key{Service: svc.Name, Server: rs.Name}
			seen[k] = true
			if svc.Feedback == nil {
				delete(c.fb, k) // a reload took the feedback away: its drain, too
			}
			st, reason := c.effectiveLocked(k)
			prev, known := c.last[k]
			c.rampLocked(svc, k, st, prev, known, now)
			if !st.InService() && known && prev.InService() {
				c.gens[k]++ // drop its persistence entries: its clients move now
			}
			if !known || prev != st {
				svcName, rs := svc.Name, *rs
				logs = append(logs, func() {
					ev := c.log.Info()
					if !st.InService() {
						ev = c.log.Warn()
					}
					ev.Str("service", svcName).Str("server", rs.Name).Str("address", rs.Address.String()).
						Str("state", st.String()).Str("reason", reason).Str("cause", why).Msg("real server state")
				})
			}
			c.last[k] = st
			sp := tables.ServerSpec{
				Name: rs.Name, Addr: rs.Address, Port: rs.Port, Weight: c.weightLocked(svc, rs, k),
				State: st, Generation: c.gens[k],
			}
			if svc.Layer == config.Layer4 {
				c.fillMAC(svc, rs.Forwarding, &sp)
			}
			if st == tables.StateOnline && sp.Weight > 0 && (svc.Layer == config.Layer7 || sp.HasMAC) {
				eligible++
			}
			ss.Servers = append(ss.Servers, sp)
		}
		if fb := svc.Fallback; fb != nil {
			sp := &tables.ServerSpec{Name: fb.Name, Addr: fb.Address, Port: fb.Port, Weight: 1, State: tables.StateOnline}
			if svc.Layer == config.Layer4 {
				c.fillMAC(svc, svc.Forwarding, sp)
			}
			ss.Fallback = sp
		}
		logs = append(logs, c.serviceLogLocked(svc, eligible))
		spec.Services = append(spec.Services, ss)
	}
	for k := range c.last {
		if !seen[k] {
			delete(c.last, k)
			delete(c.health, k)
			delete(c.gens, k)
			delete(c.fb, k)
			delete(c.rampFrom, k)
			delete(c.ramp, k)
		}
	}
	prev := c.holder.Load()
	next, err := tables.Build(spec, prev)
	if err != nil {
		return fmt.Errorf("compile snapshot (%s): %w", why, err)
	}
	c.holder.Store(next)
	for _, h := range c.hooks {
		h(prev, next)
	}
	for _, l := range logs {
		l()
	}
	return nil
}

// serviceSpec is the part of a service's table spec that comes from the
// configuration alone (everything but the real servers and the fallback).
func serviceSpec(svc *config.Service) tables.ServiceSpec {
	ss := tables.ServiceSpec{
		Name:       svc.Name,
		VIP:        svc.Address,
		TCP:        svc.Protocol.Has(config.TCP),
		UDP:        svc.Protocol.Has(config.UDP),
		Layer:      tables.Layer(svc.Layer),
		MaglevSize: uint32(svc.MaglevSize),
	}
	for _, r := range svc.Ports {
		ss.Ports = append(ss.Ports, tables.PortRange{Lo: r.Lo, Hi: r.Hi})
	}
	if svc.Persistence.Mode == config.PersistSourceIP {
		ss.PersistTimeout = svc.Persistence.Timeout
		ss.AffinityCap = svc.Persistence.Capacity
	}
	return ss
}

// Check builds the snapshot cfg would give, without putting it in force and
// without touching the controller's states: what a reload must know before it
// changes anything.
func (c *Controller) Check(cfg *config.Config) error {
	spec := tables.Spec{HashSeed: cfg.Node.HashSeed}
	for i := range cfg.Services {
		svc := &cfg.Services[i]
		ss := serviceSpec(svc)
		for _, rs := range svc.RealServers {
			ss.Servers = append(ss.Servers, tables.ServerSpec{Name: rs.Name, Addr: rs.Address, Port: rs.Port,
				Weight: uint32(rs.Weight), State: tables.StateOnline})
		}
		if fb := svc.Fallback; fb != nil {
			ss.Fallback = &tables.ServerSpec{Name: fb.Name, Addr: fb.Address, Port: fb.Port, Weight: 1, State: tables.StateOnline}
		}
		spec.Services = append(spec.Services, ss)
	}
	if _, err := tables.Build(spec, c.holder.Load()); err != nil {
		return fmt.Errorf("compile snapshot: %w", err)
	}
	return nil
}

// fillMAC fills a layer-4 server's MAC (for forwarding fw): its own, or for a
// tunnelled server the next hop's, with the encapsulation.
func (c *Controller) fillMAC(svc *config.Service, fw config.Forwarding, sp *tables.ServerSpec) {
	if fw == config.Tunnel {
		sp.Encap, sp.GUEPort = encapSpec(svc)
	}
	if c.macs == nil {
		return
	}
	if fw == config.Tunnel {
		fillTunnel(c.macs, sp)
		return
	}
	sp.MAC, sp.HasMAC = c.macs.MAC(sp.Addr)
}

// serviceLogLocked records whether a service has a real server for new clients and
// returns what to log: once when it loses the last one, once when it gets one back.
func (c *Controller) serviceLogLocked(svc *config.Service, eligible int) func() {
	down := eligible == 0
	was, known := c.svcDown[svc.Name]
	c.svcDown[svc.Name] = down
	if known && was == down || !known && !down {
		return func() {}
	}
	name, vip, fallback := svc.Name, svc.Address, svc.Fallback
	if down {
		return func() {
			ev := c.log.Error().Str("service", name).Str("vip", vip.String())
			if fallback != nil {
				ev.Str("fallback", fallback.Address.String()).Msg("no real server available: new clients go to the fallback server")
			} else {
				ev.Msg("no real server available: new flows are dropped")
			}
		}
	}
	return func() {
		c.log.Info().Str("service", name).Int("servers", eligible).Msg("virtual service has real servers again")
	}
}

// ServiceDown reports whether a service has no real server for new clients.
func (c *Controller) ServiceDown(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.svcDown[name]
}
