package pipeline

import (
	"context"
	"net/netip"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/tables"
)

// FastPathRefreshEvery is how often [FastPathAger.Run] walks the fast-path map:
// persistence entries of clients that only the steering program sees are
// refreshed, and idle or stale decisions deleted.
const FastPathRefreshEvery = 2 * time.Second

// FastPathIdle is how long a decision of a service without persistence is kept
// while its client sends nothing (a full map refuses newcomers until the ager frees room).
const FastPathIdle = 60 * time.Second

// FastPathMap is the control plane's side of the steering program's fast-path
// map: what the ageing rules read and change. *[afxdp.FastPath] implements it;
// the rules are tested against a map in memory.
type FastPathMap interface {
	// Generation returns the current generation.
	Generation() uint32
	// Bump starts a new generation: every recorded decision becomes stale.
	Bump() error
	// ServiceName returns the name of the service with a fast-path id, "" if none.
	ServiceName(id uint32) string
	// Walk calls fn for every entry with how long ago its client was last seen
	// and deletes the entries for which fn returns false.
	Walk(fn func(k afxdp.FastPathKey, v afxdp.FastPathValue, idle time.Duration) (keep bool)) (kept, deleted int, err error)
}

// FastPathAger keeps the fast-path map in step with the snapshots: it bumps
// the generation on every swap and walks the map every FastPathRefreshEvery.
type FastPathAger struct {
	fp     FastPathMap
	holder *tables.Holder
	clock  func() uint32
	log    zerolog.Logger
}

// NewFastPathAger returns an ager of fp for the snapshots in holder; clock is
// the persistence clock (nil: [tables.Now]).
func NewFastPathAger(fp FastPathMap, holder *tables.Holder, clock func() uint32, log zerolog.Logger) *FastPathAger {
	if clock == nil {
		clock = tables.Now
	}
	return &FastPathAger{fp: fp, holder: holder, clock: clock, log: log}
}

// OnSnapshot bumps the generation, so that no decision taken with an older
// snapshot (a server halted, down, drained, a MAC changed, a reload) is
// applied by the steering program. Give it to the control plane's OnSnapshot.
func (a *FastPathAger) OnSnapshot(_, _ *tables.Snapshot) {
	if err := a.fp.Bump(); err != nil {
		// Decisions of the old generation would stay in force: say so loudly;
		// the next swap tries again.
		a.log.Error().Err(err).Msg("fast-path generation not bumped: clients of the fast path keep their old server until the next change")
	}
}

// Run walks the map every FastPathRefreshEvery until ctx is done.
func (a *FastPathAger) Run(ctx context.Context) {
	t := time.NewTicker(FastPathRefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.Walk()
		}
	}
}

// Walk walks the map once with the snapshot in force (see AgeFastPath) and
// logs what it did.
func (a *FastPathAger) Walk() {
	kept, deleted, touched, err := AgeFastPath(a.fp, a.holder.Load(), a.clock())
	if err != nil {
		a.log.Warn().Err(err).Msg("fast-path map not refreshed")
		return
	}
	if deleted > 0 || touched > 0 {
		a.log.Debug().Int("kept", kept).Int("deleted", deleted).Int("persistence_refreshed", touched).Msg("fast-path map walked")
	}
}

// AgeFastPath walks fp once under snap at persistence time now. A decision of
// the current generation for a service with persistence refreshes the
// client's persistence entry with the time the steering program last saw it
// (the pipeline no longer sees that client); decisions idle beyond the
// service's persistence timeout (FastPathIdle without persistence), of an
// older generation or of an unknown service are deleted. It returns the
// entries kept and deleted and the persistence entries refreshed.
func AgeFastPath(fp FastPathMap, snap *tables.Snapshot, now uint32) (kept, deleted, touched int, err error) {
	gen := fp.Generation()
	kept, deleted, err = fp.Walk(func(k afxdp.FastPathKey, v afxdp.FastPathValue, idle time.Duration) bool {
		if v.Gen != gen || snap == nil {
			return false
		}
		svc := snap.Service(fp.ServiceName(k.Service))
		if svc == nil {
			return false
		}
		if svc.PersistTimeout == 0 {
			return idle <= FastPathIdle
		}
		if idle > svc.PersistTimeout {
			return false
		}
		for _, s := range svc.Servers {
			if s.HasMAC && s.MAC == v.DstMAC {
				seen := now - uint32(idle/time.Second)
				if svc.Touch(netip.AddrFrom16(k.Client).Unmap(), s.Name, seen, now) {
					touched++
				}
				break
			}
		}
		return true
	})
	return kept, deleted, touched, err
}
