// Package alerts sends real-server and virtual-service state changes and HA
// role changes (failovers) by email (SMTP with STARTTLS and AUTH PLAIN,
// batched) and to a remote syslog (RFC 5424 over UDP or TCP).
//
// The events are read from the daemon's log (internal/logring): the lines the
// control plane and the HA node write when a state is in force are the single
// record of what changed, so alerts say exactly what the log says, and the
// tests in this package and in e2e fail when those lines change.
package alerts

import (
	"fmt"
	"time"

	"github.com/medialb/medialb/internal/logring"
)

// The log messages that are events (control/compile.go, ha/node.go).
const (
	msgServerState = "real server state"
	msgNoServer    = "no real server available: new flows are dropped"
	msgFallback    = "no real server available: new clients go to the fallback server"
	msgServerAgain = "virtual service has real servers again"
	msgHARole      = "HA role changed"
)

// Syslog severities.
const (
	sevWarning = 4
	sevNotice  = 5
)

// Event is one state change to report.
type Event struct {
	Time     time.Time
	Severity int    // syslog severity: 4 warning (out of service), 5 notice (back)
	MsgID    string // RFC 5424 MSGID: "server", "service" or "ha"
	Text     string // one line for a person
}

func field(l logring.Line, k string) string {
	if v, ok := l.Fields[k]; ok {
		return fmt.Sprint(v)
	}
	return ""
}

// FromLog returns the event a log line records, if it records one.
func FromLog(l logring.Line) (Event, bool) {
	t, err := time.Parse(time.RFC3339, l.Time)
	if err != nil {
		t = time.Now()
	}
	ev := Event{Time: t, Severity: sevNotice}
	svc, srv := field(l, "service"), field(l, "server")
	switch l.Message {
	case msgServerState:
		state, reason := field(l, "state"), field(l, "reason")
		if state == "online" && reason == "not checked yet" {
			return Event{}, false // a server's first appearance, not a change
		}
		if state != "online" {
			ev.Severity = sevWarning
		}
		ev.MsgID = "server"
		ev.Text = fmt.Sprintf("real server %s (%s) of %s is %s: %s", srv, field(l, "address"), svc, state, reason)
	case msgNoServer, msgFallback:
		ev.Severity, ev.MsgID = sevWarning, "service"
		ev.Text = fmt.Sprintf("virtual service %s (%s) is down: %s", svc, field(l, "vip"), l.Message)
	case msgServerAgain:
		ev.MsgID = "service"
		ev.Text = fmt.Sprintf("virtual service %s is up again: %s real servers take new clients", svc, field(l, "servers"))
	case msgHARole:
		ev.Severity, ev.MsgID = sevWarning, "ha"
		ev.Text = fmt.Sprintf("HA failover: this node is now %s (was %s)", field(l, "role"), field(l, "was"))
		if c := field(l, "cause"); c != "" {
			ev.Text += ": " + c
		}
	default:
		return Event{}, false
	}
	return ev, true
}
