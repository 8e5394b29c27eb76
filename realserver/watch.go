package realserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/tables"
)

// DefaultWatchInterval is the time between two rounds of a Watcher.
const DefaultWatchInterval = 3 * time.Second

// Watcher runs Check in rounds and keeps the latest problems per real
// server for the overview and the metrics; it logs each server's problems
// when they appear or change, and when they are gone. It is safe for
// concurrent use.
type Watcher struct {
	log zerolog.Logger

	mu        sync.Mutex
	problems  map[tables.Key][]string
	strangers map[Stranger]bool
	last      *Report // the last round's, for what listen hears between rounds
}

// NewWatcher returns a Watcher without findings.
func NewWatcher(log zerolog.Logger) *Watcher {
	return &Watcher{log: log, problems: map[tables.Key][]string{}, strangers: map[Stranger]bool{}}
}

// Run checks the real servers of the configuration cfg returns (read anew
// each round, so reloads apply) every interval until ctx is done.
func (w *Watcher) Run(ctx context.Context, link Link, cfg func() *config.Config, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	for {
		c := cfg()
		opt, err := OptionsFor(c)
		if err == nil {
			var rep Report
			rep, err = Check(link, Targets(c), opt)
			if err == nil {
				w.record(rep)
			}
		}
		if err != nil {
			w.log.Warn().Err(err).Msg("real-server ARP and path check failed; trying again")
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
			continue
		}
		// Between rounds: gratuitous ARP and unsolicited NA for a VIP.
		for until := time.Now().Add(interval); ctx.Err() == nil && time.Now().Before(until); {
			// Short slices, so that a cancelled ctx ends the wait soon.
			slice := time.Now().Add(250 * time.Millisecond)
			if slice.After(until) {
				slice = until
			}
			if err := w.listen(link, slice); err != nil {
				w.log.Warn().Err(err).Msg("listening for gratuitous ARP failed")
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// listen reads what link receives until deadline and records every host
// that claims a VIP of the last round's targets on its own: a real server
// (its problem is added at once, before the next round confirms it) or a
// stranger.
func (w *Watcher) listen(link Link, deadline time.Time) error {
	buf := make([]byte, 2048)
	mac := link.MAC()
	for {
		n, err := link.Recv(buf, deadline)
		if errors.Is(err, syscall.EAGAIN) {
			return nil
		}
		if err != nil {
			return err
		}
		s, ok := parse(buf[:n])
		if !ok || !s.claim || s.mac == mac {
			continue
		}
		w.claimed(s.addr, s.mac)
	}
}

// claimed records that the host with MAC m claimed address a.
func (w *Watcher) claimed(a netip.Addr, m [6]byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil || slices.Contains(w.last.Allowed, m) {
		return
	}
	isVIP, owner := false, false
	for _, r := range w.last.Results {
		if r.VIP != a {
			continue
		}
		isVIP = true
		if !r.HasMAC || r.MAC != m {
			continue
		}
		owner = true
		k := tables.Key{Service: r.Service, Server: r.Server}
		what := ProblemAnswersARP
		if a.Is6() {
			what = ProblemAnswersND
		}
		if slices.ContainsFunc(w.problems[k], func(p string) bool { return strings.HasPrefix(p, what) }) {
			continue
		}
		p := fmt.Sprintf("%s %s (from %s, announced unasked): the VIP is on a network interface, so the server can take the VIP's traffic from the load balancer; fix: hold the VIP on lo instead (medialb realserver-setup prints the commands)",
			what, a, macString(m))
		w.problems[k] = append(slices.Clone(w.problems[k]), p)
		w.log.Error().Str("service", r.Service).Str("server", r.Server).Str("address", r.Addr.String()).
			Strs("problems", w.problems[k]).Msg("real server misconfigured for direct routing")
	}
	if st := (Stranger{VIP: a, MAC: m}); isVIP && !owner && !w.strangers[st] {
		w.strangers[st] = true
		w.log.Error().Str("vip", a.String()).Str("mac", macString(m)).
			Msg("a host that is no real server of the VIP, nor this node or its HA peer, announces the VIP")
	}
}

// record keeps rep's findings and logs what changed.
func (w *Watcher) record(rep Report) {
	next := map[tables.Key][]string{}
	for _, r := range rep.Results {
		k := tables.Key{Service: r.Service, Server: r.Server}
		next[k] = append(next[k], r.Problems...)
	}
	strangers := map[Stranger]bool{}
	for _, s := range rep.Strangers {
		strangers[s] = true
	}
	w.mu.Lock()
	prev, prevStrangers := w.problems, w.strangers
	w.problems, w.strangers, w.last = next, strangers, &rep
	w.mu.Unlock()
	for _, r := range rep.Results {
		k := tables.Key{Service: r.Service, Server: r.Server}
		switch {
		case slices.Equal(prev[k], next[k]):
		case len(next[k]) > 0:
			w.log.Error().Str("service", r.Service).Str("server", r.Server).Str("address", r.Addr.String()).
				Strs("problems", next[k]).Msg("real server misconfigured for direct routing")
		default:
			w.log.Info().Str("service", r.Service).Str("server", r.Server).Str("address", r.Addr.String()).
				Msg("real server set up right for direct routing again")
		}
	}
	for _, s := range rep.Strangers {
		if prevStrangers[s] {
			continue
		}
		w.log.Error().Str("vip", s.VIP.String()).Str("mac", macString(s.MAC)).
			Msg("a host that is no real server of the VIP, nor this node or its HA peer, answers ARP/ND for it")
	}
}

// Problems returns a copy of the latest findings by real server; servers
// without problems are present with an empty list once checked.
func (w *Watcher) Problems() map[tables.Key][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.problems)
}
