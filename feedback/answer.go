// Package feedback polls real servers' load agents and reads their answers:
// HAProxy's agent-check protocol (a line of words such as "75%", "drain",
// "maint", "up"), the Loadbalancer.org feedback agent (the idle percentage,
// "75") and an HTTP URL that answers either.
//
// A [Poller] asks each target on its interval and hands every answer, or the
// reason there was none, to a callback; what the answers do to weights and
// states is the control plane's business (control.Controller.SetFeedback).
package feedback

import (
	"fmt"
	"strconv"
	"strings"
)

// Agent is an agent's word about its server's state.
type Agent uint8

// Agent states. AgentNone: the answer said nothing about the state.
const (
	AgentNone  Agent = iota
	AgentReady       // "ready" or "up": back to normal
	AgentDrain       // "drain": no new clients
	AgentMaint       // "maint": out of service (halt)
	AgentDown        // "down", "fail" or "stopped": out of service
)

// String returns the agent's word for s ("" for AgentNone).
func (s Agent) String() string {
	switch s {
	case AgentReady:
		return "ready"
	case AgentDrain:
		return "drain"
	case AgentMaint:
		return "maint"
	case AgentDown:
		return "down"
	}
	return ""
}

// Answer is what one agent answered.
type Answer struct {
	// Percent is the share of the configured weight the server asks for,
	// 0..100, or -1 when the answer gave none.
	Percent int
	// State is the state the agent asked for, AgentNone when none.
	State Agent
	// Text is the answer as received, trimmed, at most MaxAnswer bytes.
	Text string
}

// MaxAnswer is the longest answer read; an agent's line is short.
const MaxAnswer = 256

// Parse reads an answer. Words are separated by spaces, tabs or commas, as
// HAProxy's agent-check allows; a percentage ("75%", or a bare "75" as the
// Loadbalancer.org agent sends its idle percentage) sets Percent, clamped to
// 0..100; state words set State (the last one wins); "#" starts a comment;
// other words of HAProxy's protocol ("maxconn:N") are ignored. An answer
// with neither a percentage nor a state word is an error that quotes it.
func Parse(text string) (Answer, error) {
	text = strings.TrimSpace(text)
	if len(text) > MaxAnswer {
		text = text[:MaxAnswer]
	}
	a := Answer{Percent: -1, Text: text}
	body, _, _ := strings.Cut(text, "#")
	for _, w := range strings.FieldsFunc(body, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' || r == '\r' || r == '\n' }) {
		switch lw := strings.ToLower(w); lw {
		case "ready", "up":
			a.State = AgentReady
		case "drain":
			a.State = AgentDrain
		case "maint":
			a.State = AgentMaint
		case "down", "fail", "failed", "stopped":
			a.State = AgentDown
		default:
			num := strings.TrimSuffix(lw, "%")
			if n, err := strconv.ParseFloat(num, 64); err == nil && num != "" && !strings.ContainsAny(num, "+eEnNiI") {
				a.Percent = int(max(0, min(100, n)) + 0.5)
			}
		}
	}
	if a.Percent < 0 && a.State == AgentNone {
		return a, fmt.Errorf("parse agent answer %q: neither a percentage nor drain, maint, ready, up or down", text)
	}
	return a, nil
}
