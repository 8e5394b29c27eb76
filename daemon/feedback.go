package daemon

import (
	"net/netip"
	"time"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/feedback"
	"github.com/medialb/medialb/netif"
	"github.com/medialb/medialb/realserver"
	"github.com/medialb/medialb/tables"
)

// This file runs the load-feedback agents' polls, the slow starts' ticks and the
// real-server ARP/ND and path checks.

// tickInterval is how often slow starts move on (a ramp has 10 steps).
const tickInterval = 500 * time.Millisecond

// startFeedback starts polling the feedback agents of cfg and ticking the
// control plane's slow starts until the daemon's context ends.
func (d *Daemon) startFeedback(cfg *config.Config) {
	d.fbp = feedback.NewPoller(func(k tables.Key, r feedback.Result) {
		if c := d.controller(); c != nil {
			c.SetFeedback(k.Service, k.Server, r)
		}
	})
	d.fbp.Set(feedbackTargets(cfg))
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(tickInterval)
		defer t.Stop()
		for {
			select {
			case <-d.ctx.Done():
				return
			case <-t.C:
				if c := d.controller(); c != nil {
					c.Tick()
				}
			}
		}
	}()
}

// feedbackTargets lists the agent of every real server of a service with feedback.
func feedbackTargets(cfg *config.Config) []feedback.Target {
	var out []feedback.Target
	for _, s := range cfg.Services {
		fb := s.Feedback
		if fb == nil {
			continue
		}
		for _, r := range s.RealServers {
			out = append(out, feedback.Target{
				Key:      tables.Key{Service: s.Name, Server: r.Name},
				Addr:     netip.AddrPortFrom(r.Address, r.FeedbackPort),
				Protocol: string(fb.Protocol), Path: fb.Path,
				Interval: fb.Interval, Timeout: fb.Timeout,
			})
		}
	}
	return out
}

// startRealServerWatch runs the real-server ARP/ND and path checks of the
// direct-routing services in rounds (realserver.Watcher).
func (d *Daemon) startRealServerWatch(cfg *config.Config) {
	link, err := netif.OpenPacket(cfg.Node.Interface)
	if err != nil {
		d.log.Warn().Err(err).Msg("real-server ARP and path checks off")
		return
	}
	d.rsw = realserver.NewWatcher(d.log)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer link.Close()
		d.rsw.Run(d.ctx, link, func() *config.Config { return d.controller().Config() }, realserver.DefaultWatchInterval)
	}()
}

// problems returns the real-server checks' findings by server.
func (d *Daemon) problems() map[tables.Key][]string {
	if d.rsw == nil {
		return nil
	}
	return d.rsw.Problems()
}
