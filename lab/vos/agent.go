package vos

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/medialb/medialb/feedback"
)

// DefaultAgentAnswer is what a simulated feedback agent answers until told
// otherwise: idle, the full configured weight.
const DefaultAgentAnswer = "100%"

// This file is the simulated load-feedback agent: a TCP listener (Config.Agent,
// the Loadbalancer.org and HAProxy agent port 3333) that writes the current
// answer and a newline to every connection and closes it, the same answer on
// GET /load of the HTTP and HTTPS listeners, and the control requests
// POST /agent?answer=TEXT and GET /agent that set and show it.

// AgentAnswer returns the agent's current answer.
func (s *Server) AgentAnswer() string { return s.agent.Load().(string) }

// SetAgentAnswer sets the agent's answer ("90%", "drain", "up 50%", ...);
// "" makes it silent: connections are closed without a word. It fails,
// changing nothing, on any other answer medialb could not read.
func (s *Server) SetAgentAnswer(text string) error {
	if strings.TrimSpace(text) == "" {
		s.agent.Store("")
		return nil
	}
	if _, err := feedback.Parse(text); err != nil {
		return fmt.Errorf("set agent answer: %w", err)
	}
	s.agent.Store(strings.TrimSpace(text))
	return nil
}

// AgentAddr returns the bound agent address, nil if disabled.
func (s *Server) AgentAddr() net.Addr {
	if s.agentLn == nil {
		return nil
	}
	return s.agentLn.Addr()
}

// startAgent opens the agent listener, if configured.
func (s *Server) startAgent() error {
	s.agent.Store(DefaultAgentAnswer)
	if s.cfg.Agent == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Agent)
	if err != nil {
		return fmt.Errorf("listen feedback agent %s: %w", s.cfg.Agent, err)
	}
	s.agentLn = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if a := s.AgentAnswer(); a != "" {
				c.Write([]byte(a + "\n")) //nolint:errcheck // the poller sees what it got
			}
			c.Close()
		}
	}()
	return nil
}

// agentRoutes adds GET /load to mux (the HTTP listeners) and the agent's
// control requests to ctl.
func (s *Server) agentRoutes(mux, ctl *http.ServeMux) {
	if mux != nil {
		mux.HandleFunc("GET /load", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, s.AgentAnswer())
		})
	}
	if ctl != nil {
		ctl.HandleFunc("GET /agent", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "answer=%s\n", s.AgentAnswer())
		})
		ctl.HandleFunc("POST /agent", func(w http.ResponseWriter, r *http.Request) {
			if err := s.SetAgentAnswer(r.URL.Query().Get("answer")); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s.log.Info().Str("answer", s.AgentAnswer()).Msg("feedback agent answer set")
			fmt.Fprintf(w, "answer=%s\n", s.AgentAnswer())
		})
	}
}
