package realserver

import (
	"context"
	"maps"
	"slices"
	"sync"
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
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
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
	w.problems, w.strangers = next, strangers
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
