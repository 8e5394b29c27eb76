package config

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// Feedback defaults: the Loadbalancer.org agent's port and HAProxy's habits.
const (
	// DefaultFeedbackPort is the feedback agent's TCP port (Loadbalancer.org's 3333).
	DefaultFeedbackPort = 3333
	// DefaultFeedbackPath is the path of an http feedback URL.
	DefaultFeedbackPath = "/load"
	// DefaultFeedbackInterval is the time between two polls of one agent.
	DefaultFeedbackInterval = 5 * time.Second
	// DefaultFeedbackStep is the smallest change of a server's effective
	// weight, in percent of its configured weight, that is republished: a
	// smaller move leaves the Maglev table as it is, so it does not churn.
	DefaultFeedbackStep = 10
)

// FeedbackProtocol is how a feedback agent is asked for its load.
type FeedbackProtocol string

// Feedback protocols.
const (
	// FeedbackAgent is HAProxy's agent-check: connect to the port, read one
	// line of words such as "75%", "drain", "maint", "up", "ready".
	FeedbackAgent FeedbackProtocol = "agent"
	// FeedbackLBOrg is the Loadbalancer.org feedback agent: connect to the
	// port, read the idle percentage ("75").
	FeedbackLBOrg FeedbackProtocol = "lborg"
	// FeedbackHTTP is an HTTP GET of port and path answering like the agent.
	FeedbackHTTP FeedbackProtocol = "http"
)

// Feedback configures a service's load feedback: medialb polls an agent on
// each real server and scales the server's configured weight by its answer.
type Feedback struct {
	// Protocol is FeedbackAgent, FeedbackLBOrg or FeedbackHTTP. Required.
	Protocol FeedbackProtocol
	// Port is the agent's port. Default DefaultFeedbackPort; a real server's
	// feedback_port overrides it (RealServer.FeedbackPort).
	Port uint16
	// Path is the URL path (http only). Default DefaultFeedbackPath.
	Path string
	// Interval is the time between two polls. Default DefaultFeedbackInterval.
	Interval time.Duration
	// Timeout bounds one poll, less than Interval. Default Interval/2, at most 2s.
	Timeout time.Duration
	// Step is the smallest change of the effective weight, in percent of the
	// configured weight, that is republished (1..100). Default DefaultFeedbackStep.
	Step int
}

// Scheduler picks a layer-7 service's real server for a new client.
type Scheduler string

// Schedulers.
const (
	// SchedulerMaglev is consistent hashing of the client address (the default).
	SchedulerMaglev Scheduler = "maglev"
	// SchedulerWLC is weighted least-connection: a new client goes to the
	// server with the fewest connections per unit of weight (layer 7 only).
	SchedulerWLC Scheduler = "wlc"
)

// feedbackKeys are the keys of a service's feedback.
var feedbackKeys = []string{"protocol", "port", "path", "interval", "timeout", "step"}

// feedback reads a service's feedback section; nil when n is nil.
func (p *parser) feedback(n *yaml.Node, path string) *Feedback {
	if n == nil {
		return nil
	}
	f, ok := p.mapping(n, path, feedbackKeys)
	if !ok {
		return nil
	}
	fb := &Feedback{Port: DefaultFeedbackPort, Interval: DefaultFeedbackInterval, Step: DefaultFeedbackStep}
	if v := f.get("protocol"); v != nil {
		if s, ok := p.oneOf(v, path+".protocol", []string{string(FeedbackAgent), string(FeedbackLBOrg), string(FeedbackHTTP)}); ok {
			fb.Protocol = FeedbackProtocol(s)
		}
	} else {
		p.errorf(n, "%s: protocol is required: agent (HAProxy agent-check), lborg (Loadbalancer.org feedback agent) or http", path)
	}
	if v := f.get("port"); v != nil {
		if x, ok := p.integer(v, path+".port", 1, 65535); ok {
			fb.Port = uint16(x)
		}
	}
	if v := f.get("path"); v != nil {
		if s, ok := p.str(v, path+".path"); ok {
			if fb.Protocol != FeedbackHTTP && fb.Protocol != "" {
				p.errorf(v, "%s.path: has no effect with protocol %s (only http)", path, fb.Protocol)
			} else if len(s) == 0 || s[0] != '/' {
				p.errorf(v, "%s.path: %q must start with /", path, s)
			}
			fb.Path = s
		}
	}
	if fb.Protocol == FeedbackHTTP && fb.Path == "" {
		fb.Path = DefaultFeedbackPath
	}
	intervalOK := true
	if v := f.get("interval"); v != nil {
		fb.Interval, intervalOK = p.duration(v, path+".interval", 100*time.Millisecond, time.Hour)
	}
	fb.Timeout = min(fb.Interval/2, 2*time.Second)
	if v := f.get("timeout"); v != nil {
		if d, ok := p.duration(v, path+".timeout", time.Millisecond, time.Hour); ok {
			if intervalOK && d >= fb.Interval {
				p.errorf(v, "%s.timeout: %v must be less than the interval %v", path, d, fb.Interval)
			}
			fb.Timeout = d
		}
	}
	if v := f.get("step"); v != nil {
		if x, ok := p.integer(v, path+".step", 1, 100); ok {
			fb.Step = int(x)
		}
	}
	return fb
}

// balancing reads a service's feedback, slow_start and scheduler.
func (p *parser) balancing(f fields, path string, s *Service, layerOK bool) {
	s.Feedback = p.feedback(f.get("feedback"), path+".feedback")
	if v := f.get("slow_start"); v != nil {
		s.SlowStart, _ = p.duration(v, path+".slow_start", 0, time.Hour)
	}
	s.Scheduler = SchedulerMaglev
	if v := f.get("scheduler"); v != nil {
		if x, ok := p.oneOf(v, path+".scheduler", []string{string(SchedulerMaglev), string(SchedulerWLC)}); ok {
			s.Scheduler = Scheduler(x)
			if layerOK && s.Layer == Layer4 && s.Scheduler == SchedulerWLC {
				p.errorf(v, "%s.scheduler: wlc applies to layer 7 only (direct routing does not see connections end)", path)
			}
		}
	}
	for i := range s.RealServers {
		rs := &s.RealServers[i]
		if rs.FeedbackPort != 0 && s.Feedback == nil && !f.has("feedback") {
			p.errorf(&yaml.Node{Line: rs.Line}, "%s.real_servers[%d].feedback_port: has no effect without the service's feedback section", path, i)
		}
		if rs.FeedbackPort == 0 && s.Feedback != nil {
			rs.FeedbackPort = s.Feedback.Port
		}
	}
}

// feedbackPort reads a real server's feedback_port.
func (p *parser) feedbackPort(rf fields, rpath string, rs *RealServer) {
	if v := rf.get("feedback_port"); v != nil {
		if x, ok := p.integer(v, rpath+".feedback_port", 1, 65535); ok {
			rs.FeedbackPort = uint16(x)
		}
	}
}
