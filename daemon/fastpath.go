package daemon

import (
	"context"
	"net/netip"
	"time"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/tables"
)

// fastPathRefreshEvery is how often the fast-path map is walked: persistence entries
// of clients that only the steering program sees are refreshed, and idle or stale
// decisions deleted.
const fastPathRefreshEvery = 2 * time.Second

// fastPathIdle is how long a decision of a service without persistence is kept
// while its client sends nothing (the LRU map would drop it anyway when full).
const fastPathIdle = 60 * time.Second

// startFastPath bumps the fast-path generation on every snapshot swap, so that no
// decision taken with an older snapshot (a server halted, down, drained, a MAC
// changed, a reload) is applied by the steering program, and walks the map every
// fastPathRefreshEvery until ctx is done.
func (d *Daemon) startFastPath(ctx context.Context, fp *afxdp.FastPath) {
	d.controller().OnSnapshot(func(prev, next *tables.Snapshot) {
		if err := fp.Bump(); err != nil {
			// Decisions of the old generation would stay in force: take the fast path
			// out of use by failing loudly; the next swap tries again.
			d.log.Error().Err(err).Msg("fast-path generation not bumped: clients of the fast path keep their old server until the next change")
		}
	})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(fastPathRefreshEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				d.refreshFastPath(fp)
			}
		}
	}()
}

// refreshFastPath walks the fast-path map once: a decision of the current
// generation for a service with persistence refreshes the client's persistence
// entry with the time the steering program last saw it (the pipeline no longer
// sees that client); decisions idle beyond the persistence timeout (fastPathIdle
// without persistence), of an older generation or of an unknown service are deleted.
func (d *Daemon) refreshFastPath(fp *afxdp.FastPath) {
	snap := d.holder.Load()
	gen := fp.Generation()
	now := d.now()
	touched := 0
	kept, deleted, err := fp.Walk(func(k afxdp.FastPathKey, v afxdp.FastPathValue, idle time.Duration) bool {
		if v.Gen != gen || snap == nil {
			return false
		}
		svc := snap.Service(fp.ServiceName(k.Service))
		if svc == nil {
			return false
		}
		if svc.PersistTimeout == 0 {
			return idle <= fastPathIdle
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
	if err != nil {
		d.log.Warn().Err(err).Msg("fast-path map not refreshed")
		return
	}
	if deleted > 0 || touched > 0 {
		d.log.Debug().Int("kept", kept).Int("deleted", deleted).Int("persistence_refreshed", touched).Msg("fast-path map walked")
	}
}
