package control

import (
	"fmt"
	"maps"
	"time"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/feedback"
	"github.com/medialb/medialb/tables"
)

// Feedback is what a real server's load agent last said and what medialb
// made of it.
type Feedback struct {
	// Percent is the share of the configured weight in force (0..100): the
	// agent's last percentage that moved it by at least the service's step.
	Percent int
	// Agent is the state the agent asked for (drain, maint, down), or
	// feedback.AgentNone.
	Agent feedback.Agent
	// Answer is the agent's last answer as received; Error why the last poll
	// had none ("" when it answered). A poll without an answer changes nothing.
	Answer, Error string
	// At is when the last poll finished; zero before the first.
	At time.Time
	// AnsweredAt is when the agent last answered.
	AnsweredAt time.Time
}

// SetFeedback records the result of one poll of a real server's agent. A
// percentage that moves the server's share of its configured weight by at
// least the service's feedback step (or to or from zero) is republished, a
// changed state (drain, maint, down, ready) at once; a poll without an
// answer (r.Err) leaves both as they were. Unknown names are ignored.
func (c *Controller) SetFeedback(service, server string, r feedback.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	svc := c.cfg.Service(service)
	if svc == nil || svc.RealServer(server) == nil || svc.Feedback == nil {
		return
	}
	k := Key{Service: service, Server: server}
	fb, ok := c.fb[k]
	if !ok {
		fb = Feedback{Percent: 100}
	}
	fb.At = r.At
	if r.Err != nil {
		if fb.Error == "" {
			c.log.Warn().Str("service", service).Str("server", server).Err(r.Err).
				Msg("feedback agent did not answer; weight and state stay as they were")
		}
		fb.Error = r.Err.Error()
		c.fb[k] = fb
		return
	}
	fb.Error, fb.Answer, fb.AnsweredAt = "", r.Answer.Text, r.At
	changed := false
	if p := r.Answer.Percent; p >= 0 && p != fb.Percent {
		if diff := p - fb.Percent; diff >= svc.Feedback.Step || -diff >= svc.Feedback.Step || p == 0 || fb.Percent == 0 {
			fb.Percent, changed = p, true
		}
	}
	if st := r.Answer.State; st != feedback.AgentNone {
		if st == feedback.AgentReady {
			st = feedback.AgentNone
		}
		if st != fb.Agent {
			fb.Agent, changed = st, true
		}
	}
	c.fb[k] = fb
	if changed {
		if err := c.rebuildLocked(fmt.Sprintf("feedback agent answered %q", r.Answer.Text)); err != nil {
			c.log.Error().Err(err).Msg("feedback not applied")
		}
	}
}

// FeedbackStates returns a copy of every real server's feedback state.
func (c *Controller) FeedbackStates() map[Key]Feedback {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.fb)
}

// agentStateLocked is the state the agent of k asks for, as a tables.State
// with its reason; ok is false when the agent asks for nothing.
func (c *Controller) agentStateLocked(k Key) (st tables.State, reason string, ok bool) {
	switch c.fb[k].Agent {
	case feedback.AgentMaint:
		return tables.StateHalt, "set to maint by the feedback agent", true
	case feedback.AgentDown:
		return tables.StateDown, "the feedback agent says down", true
	case feedback.AgentDrain:
		return tables.StateDrain, "drained by the feedback agent", true
	}
	return 0, "", false
}

// slowStartSteps is how many steps a slow start ramps a weight up in.
const slowStartSteps = 10

// weightLocked is the weight a server of svc gets in the next snapshot: its
// configured weight scaled by its agent's percentage and, during a slow
// start, by the ramp. A server whose scaled weight is not zero keeps at least 1.
func (c *Controller) weightLocked(svc *config.Service, rs *config.RealServer, k Key) uint32 {
	w := uint64(rs.Weight)
	if w == 0 {
		return 0
	}
	num, den := uint64(1), uint64(1)
	if fb, ok := c.fb[k]; ok && svc.Feedback != nil {
		if fb.Percent == 0 {
			return 0
		}
		num, den = uint64(fb.Percent), 100
	}
	if step, ok := c.ramp[k]; ok {
		num, den = num*uint64(step), den*slowStartSteps
	}
	return uint32(max(1, w*num/den))
}

// rampLocked follows a server's slow start in rebuildLocked: a server that
// comes back online (from drain, halt or down) starts its ramp; its step is
// set from the time since. st is its new effective state, prev its last one.
func (c *Controller) rampLocked(svc *config.Service, k Key, st, prev tables.State, known bool, now time.Time) {
	if svc.SlowStart <= 0 || st != tables.StateOnline {
		delete(c.rampFrom, k)
		delete(c.ramp, k)
		return
	}
	if known && prev != tables.StateOnline {
		c.rampFrom[k] = now
	}
	from, ok := c.rampFrom[k]
	if !ok {
		return
	}
	step := rampStep(now.Sub(from), svc.SlowStart)
	if step >= slowStartSteps {
		delete(c.rampFrom, k)
		delete(c.ramp, k)
		return
	}
	c.ramp[k] = step
}

// Tick moves slow starts on: it rebuilds the snapshot when a ramping
// server's step changed. The daemon calls it about twice a second.
func (c *Controller) Tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	for k, from := range c.rampFrom {
		svc := c.cfg.Service(k.Service)
		if svc == nil || svc.SlowStart <= 0 {
			continue
		}
		step := rampStep(now.Sub(from), svc.SlowStart)
		if step != c.ramp[k] {
			if err := c.rebuildLocked("slow start"); err != nil {
				c.log.Error().Err(err).Msg("slow start step not applied")
			}
			return
		}
	}
}

// Ramping reports the slow-start step (1..9 of 10) of a real server, 0 when
// it is not ramping.
func (c *Controller) Ramping(service, server string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ramp[Key{Service: service, Server: server}]
}

// rampStep is the slow-start step after elapsed of a ramp over total: the
// tenths of total gone by, at least 1.
func rampStep(elapsed, total time.Duration) int {
	return max(1, int(elapsed*slowStartSteps/total))
}

func (c *Controller) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}
