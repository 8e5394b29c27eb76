package alerts

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/internal/logring"
)

// Notifier reads events from a log ring and sends them. Create it with Start;
// Set changes its configuration (a reload); Close stops it after sending what
// is pending. Safe for concurrent use.
type Notifier struct {
	ring *logring.Ring
	log  zerolog.Logger
	node string

	mu      sync.Mutex
	cfg     *config.Alerts
	pending []Event   // events waiting for the mail batch
	due     time.Time // when the pending mail goes
	syslog  *syslogSender

	cancel context.CancelFunc
	done   chan struct{}
}

// pollEvery is how often the ring is read.
const pollEvery = 250 * time.Millisecond

// Start reads ring from its current end (earlier lines are not alerted) and
// sends what cfg asks for; cfg may be nil (nothing is sent until Set).
func Start(ring *logring.Ring, cfg *config.Alerts, node string, log zerolog.Logger) *Notifier {
	ctx, cancel := context.WithCancel(context.Background())
	n := &Notifier{ring: ring, log: log, node: node, cancel: cancel, done: make(chan struct{})}
	n.Set(cfg)
	_, after := ring.Lines(^uint64(0), zerolog.InfoLevel, 1)
	go n.run(ctx, after)
	return n
}

// Set puts a new configuration in force.
func (n *Notifier) Set(cfg *config.Alerts) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cfg = cfg
	if n.syslog != nil {
		n.syslog.close()
		n.syslog = nil
	}
	if cfg != nil && cfg.Syslog != nil {
		n.syslog = &syslogSender{cfg: *cfg.Syslog, host: hostname()}
	}
	if cfg == nil || cfg.Email == nil {
		n.pending = nil
	}
}

// Close stops reading and sends a pending mail at once.
func (n *Notifier) Close() {
	n.cancel()
	<-n.done
}

func (n *Notifier) run(ctx context.Context, after uint64) {
	defer close(n.done)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			n.flush(true)
			return
		case <-tick.C:
		}
		lines, last := n.ring.Lines(after, zerolog.DebugLevel, 0)
		if len(lines) > 0 && lines[0].Seq > after+1 {
			// More lines came in one poll than the ring holds: some events may be lost.
			n.log.Warn().Uint64("lines", lines[0].Seq-after-1).Msg("alerts: log lines overwritten before they were read; some state changes may not be alerted")
		}
		after = last
		for _, l := range lines {
			if ev, ok := FromLog(l); ok {
				n.event(ev)
			}
		}
		n.flush(false)
	}
}

func (n *Notifier) event(ev Event) {
	n.mu.Lock()
	cfg, sl := n.cfg, n.syslog
	if cfg != nil && cfg.Email != nil {
		if len(n.pending) == 0 {
			n.due = time.Now().Add(cfg.Email.Batch)
		}
		n.pending = append(n.pending, ev)
	}
	n.mu.Unlock()
	if sl != nil {
		if err := sl.send(ev, n.node); err != nil {
			n.log.Warn().Err(err).Msg("alert not sent to syslog")
		}
	}
}

// flush sends the pending mail when its batch time has come (or now).
func (n *Notifier) flush(now bool) {
	n.mu.Lock()
	if len(n.pending) == 0 || n.cfg == nil || n.cfg.Email == nil || (!now && time.Now().Before(n.due)) {
		n.mu.Unlock()
		return
	}
	evs, cfg := n.pending, *n.cfg.Email
	n.pending = nil
	n.mu.Unlock()
	if err := sendMail(&cfg, mailText(&cfg, n.node, evs, time.Now())); err != nil {
		n.log.Warn().Err(err).Int("events", len(evs)).Msg("alert mail not sent")
		return
	}
	n.log.Info().Int("events", len(evs)).Strs("to", cfg.To).Msg("alert mail sent")
}
