package daemon

import (
	"net/netip"
	"time"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/feedback"
	"github.com/medialb/medialb/tables"
)

// This file runs the load-feedback agents' polls and the slow starts' ticks.

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
