package daemon

import (
	"os"
	"sync"

	"github.com/medialb/medialb/alerts"
	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/internal/logring"
)

// This file holds what the WebUI needs of the daemon beyond api.Source: the
// text of the configuration in force (View Configuration), the log ring (Logs)
// and the alerts read from it. Start and reload call startAlerts and inForce.

// webParts are the Daemon's parts for the WebUI.
type webParts struct {
	running runningText      // the configuration text in force
	logs    *logring.Ring    // the logger's last lines, nil for none
	alerts  *alerts.Notifier // mails and syslog messages from logs, nil without logs
}

// runningText is the configuration file's text as it was read for the
// configuration in force. Safe for concurrent use.
type runningText struct {
	mu   sync.Mutex
	text []byte
}

func (r *runningText) set(text []byte) {
	r.mu.Lock()
	r.text = text
	r.mu.Unlock()
}

func (r *runningText) get() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.text
}

// readText reads the configuration file for runningText, just before it is
// loaded; nil when it cannot be read (loading then fails too).
func readText(path string) []byte {
	data, _ := os.ReadFile(path)
	return data
}

// Option is an optional part of a Daemon, given to Start.
type Option func(*Daemon)

// WithLogs gives the WebUI's Logs page the ring the daemon's logger also writes to.
func WithLogs(r *logring.Ring) Option { return func(d *Daemon) { d.web.logs = r } }

// startAlerts starts the alerts on the log ring, when there is one.
func (d *Daemon) startAlerts(cfg *config.Config) {
	if d.web.logs != nil {
		d.web.alerts = alerts.Start(d.web.logs, cfg.Alerts, cfg.Node.Name, d.log)
	}
}

// inForce records what a successful start or reload put in force: the file's
// text and the alerts' configuration.
func (d *Daemon) inForce(cfg *config.Config, text []byte) {
	d.web.running.set(text)
	if d.web.alerts != nil {
		d.web.alerts.Set(cfg.Alerts)
	}
}

// stopAlerts sends what is pending and stops the alerts.
func (d *Daemon) stopAlerts() {
	if d.web.alerts != nil {
		d.web.alerts.Close()
	}
}
