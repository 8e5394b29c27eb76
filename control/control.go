// Package control is the one place that decides who gets traffic. It merges the
// configuration, the health checks' verdicts, the operator's administrative states
// (online, drain, halt) and the real servers' MAC addresses into the next immutable
// tables.Snapshot and swaps it in; the dataplanes read the snapshot and never wait for
// the control plane.
//
// A real server's effective state, in order of precedence:
//
//	halt  (operator)       no clients at all; persistence entries dropped
//	down  (health check)   no clients at all; persistence entries dropped
//	drain (operator)       no new clients; persistent and established ones stay
//	online                 new and persistent clients
//
// Dropping persistence entries is done by bumping the server's generation: entries
// recorded under an older generation no longer match, so the clients move at once and
// do not come back when the server returns.
package control

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/tables"
)

// ErrUnknown is returned (wrapped) for a service or real server name that does not exist.
var ErrUnknown = errors.New("unknown name")

// MACSource gives the MAC address of a layer-4 real server (netif.Neighbors).
type MACSource interface {
	MAC(addr netip.Addr) ([6]byte, bool)
}

// Health is a real server's last health verdict.
type Health struct {
	Up      bool
	Checked bool   // false until the first check finished
	Reason  string // what the last check saw
	Since   time.Time
}

// Controller compiles snapshots. It is safe for concurrent use; snapshots are built
// under its mutex, which the dataplanes never take.
type Controller struct {
	log    zerolog.Logger
	holder *tables.Holder
	macs   MACSource
	store  *AdminStore

	mu      sync.Mutex
	cfg     *config.Config
	admin   map[Key]tables.State
	health  map[Key]Health
	gens    map[Key]uint32
	last    map[Key]tables.State // effective state in the current snapshot
	svcDown map[string]bool
	panics  map[string]*panicState // by service; see panic.go
	hooks   []func(prev, next *tables.Snapshot)

	fb       map[Key]Feedback  // feedback agents' answers (feedback.go)
	rampFrom map[Key]time.Time // slow start: when the server came back
	ramp     map[Key]int       // slow start: its step, 1..slowStartSteps-1
	now      func() time.Time  // the clock; nil: time.Now (tests set it)
}

// New builds the first snapshot from cfg and stores it in holder. Administrative
// states saved by an earlier run are loaded from cfg.Node.StateDir. macs may be nil
// when no service is layer 4.
func New(cfg *config.Config, holder *tables.Holder, macs MACSource, log zerolog.Logger) (*Controller, error) {
	c := &Controller{
		log: log, holder: holder, macs: macs,
		store:  OpenAdminStore(cfg.Node.StateDir),
		cfg:    cfg,
		health: map[Key]Health{}, gens: map[Key]uint32{},
		last: map[Key]tables.State{}, svcDown: map[string]bool{},
		fb: map[Key]Feedback{}, rampFrom: map[Key]time.Time{}, ramp: map[Key]int{},
	}
	admin, err := c.store.Load()
	c.admin = admin
	if err != nil {
		// Which servers an operator had halted is unknown: putting them all back
		// in service could send clients to a server under maintenance. Every
		// server starts drained (no new clients) until an operator (or, in a
		// pair, the master's states) puts it online; the drain is saved, so a
		// restart does not undo it.
		c.admin = map[Key]tables.State{}
		for _, s := range cfg.Services {
			for _, r := range s.RealServers {
				c.admin[Key{Service: s.Name, Server: r.Name}] = tables.StateDrain
			}
		}
		log.Error().Err(err).Int("drained", len(c.admin)).
			Msg("administrative states lost: every real server starts drained; put each online (API or WebUI) once you know it may serve")
		if err := c.store.Save(c.admin); err != nil {
			log.Error().Err(err).Msg("the drained states were not saved")
		}
	}
	for k, st := range admin {
		log.Info().Str("service", k.Service).Str("server", k.Server).Str("state", st.String()).
			Msg("administrative state restored from the state directory")
	}
	if err := c.rebuildLocked("start"); err != nil {
		return nil, err
	}
	return c, nil
}

// OnSnapshot registers fn to run after every swap, with the previous and the new
// snapshot, in the goroutine that caused the change (fn must not call back into the
// Controller's setters).
func (c *Controller) OnSnapshot(fn func(prev, next *tables.Snapshot)) {
	c.mu.Lock()
	c.hooks = append(c.hooks, fn)
	c.mu.Unlock()
}

// Config returns the configuration in force.
func (c *Controller) Config() *config.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

// Reload swaps in a new configuration. Health verdicts and administrative states of
// servers that keep their service and name carry over; persistence entries of servers
// that remain are kept (the tables reuse each service's affinity table).
func (c *Controller) Reload(cfg *config.Config) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cfg
	c.cfg = cfg
	if err := c.rebuildLocked("reload"); err != nil {
		c.cfg = old
		return err
	}
	return nil
}

// SetAdmin sets an operator's state (online, drain or halt) for one real server,
// applies it at once and then saves it in the state directory. When the save fails
// the previous state is put back in force and the error says why: a state that
// would not survive a restart is not kept.
func (c *Controller) SetAdmin(service, server string, st tables.State) error {
	if st != tables.StateOnline && st != tables.StateDrain && st != tables.StateHalt {
		return fmt.Errorf("set %s/%s to %s: only online, drain and halt can be set", service, server, st)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.knownLocked(service, server); err != nil {
		return err
	}
	k := Key{Service: service, Server: server}
	prev, had := c.admin[k]
	if st == tables.StateOnline {
		delete(c.admin, k)
	} else {
		c.admin[k] = st
	}
	undo := func() {
		if had {
			c.admin[k] = prev
		} else {
			delete(c.admin, k)
		}
	}
	if err := c.rebuildLocked("operator set " + st.String()); err != nil {
		undo()
		return err
	}
	if err := c.store.Save(c.admin); err != nil {
		undo()
		if rerr := c.rebuildLocked("operator state not saved"); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("set %s/%s to %s refused, previous state kept: %w", service, server, st, err)
	}
	return nil
}

// SetHealth records a health check verdict for one real server and applies it.
// Unknown names are ignored (a check of a server removed by a reload may finish late).
func (c *Controller) SetHealth(service, server string, up bool, reason string) {
	c.SetHealthResult(service, server, up, reason, false)
}

// SetHealthResult is SetHealth with whether a failed check got no answer at all
// (health.Result.NoAnswer), which the service's panic threshold counts (see
// panic.go): past it, servers whose checks fail without an answer stay in service.
func (c *Controller) SetHealthResult(service, server string, up bool, reason string, noAnswer bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.knownLocked(service, server) != nil {
		return
	}
	k := Key{Service: service, Server: server}
	verdict := c.panicCheckLocked(k, up, noAnswer, reason, time.Now())
	if verdict == holdDown {
		return // applied one window later unless the panic keeps it (panic.go)
	}
	h := c.health[k]
	if h.Checked && h.Up == up && verdict == applyNow {
		h.Reason = reason
		c.health[k] = h
		return
	}
	c.health[k] = Health{Up: up, Checked: true, Reason: reason, Since: time.Now()}
	if err := c.rebuildLocked("health check"); err != nil {
		c.log.Error().Err(err).Msg("health change not applied")
	}
}

// Refresh rebuilds the snapshot, e.g. after a real server's MAC address changed.
func (c *Controller) Refresh(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rebuildLocked(reason); err != nil {
		c.log.Error().Err(err).Msg("snapshot not rebuilt")
	}
}

// Admin returns the operator's state of a real server (online when none was set).
func (c *Controller) Admin(service, server string) tables.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.admin[Key{Service: service, Server: server}]; ok {
		return st
	}
	return tables.StateOnline
}

// States returns copies of the operators' states (online is left out) and of
// the last health verdicts, by real server.
func (c *Controller) States() (admin map[Key]tables.State, health map[Key]Health) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.admin), maps.Clone(c.health)
}

// HealthOf returns the last health verdict of a real server.
func (c *Controller) HealthOf(service, server string) Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.health[Key{Service: service, Server: server}]
}

func (c *Controller) knownLocked(service, server string) error {
	s := c.cfg.Service(service)
	if s == nil {
		return fmt.Errorf("virtual service %q: %w", service, ErrUnknown)
	}
	if s.RealServer(server) == nil {
		return fmt.Errorf("real server %q of %q: %w", server, service, ErrUnknown)
	}
	return nil
}
