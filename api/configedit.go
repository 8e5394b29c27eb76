package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/medialb/medialb/config/edit"
)

// This file serves the Cluster Configuration: virtual services and real servers
// changed through the API are staged as the configuration file's next text
// (config/edit), validated on every change by `medialb check`'s code, and
// written and reloaded by one apply.

// maxBody bounds a request body of the config endpoints.
const maxBody = 1 << 20

// staging holds the changes made through the API and not yet applied. Its zero
// value has nothing staged; it is safe for concurrent use.
type staging struct {
	mu   sync.Mutex
	base []byte // the file's text when the first change was staged; nil: nothing staged
	text []byte // the text with every staged change
}

// ConfigState is the answer of the config endpoints: the virtual services as
// staged (or as in the file when nothing is), and what is staged.
type ConfigState struct {
	File     string      `json:"file"`
	Staged   bool        `json:"staged"` // changes wait for POST /api/v1/config/apply
	Services []any       `json:"services"`
	Diff     []edit.Line `json:"diff,omitempty"` // the staged text against the file, when staged
}

// ProblemsAnswer is the 400 answer to an invalid change: nothing was staged.
type ProblemsAnswer struct {
	Errors []edit.Problem `json:"errors"`
}

func (s *Server) configRoutes(mux interface {
	HandleFunc(string, func(http.ResponseWriter, *http.Request))
}) {
	mux.HandleFunc("GET /api/v1/config/services", s.handleConfigGet)
	mux.HandleFunc("POST /api/v1/config/services", s.configChange(http.StatusCreated, func(r *http.Request, text, body []byte) ([]byte, error) {
		return edit.AddService(text, body)
	}))
	mux.HandleFunc("PUT /api/v1/config/services/{name}", s.configChange(http.StatusOK, func(r *http.Request, text, body []byte) ([]byte, error) {
		return edit.ReplaceService(text, r.PathValue("name"), body)
	}))
	mux.HandleFunc("DELETE /api/v1/config/services/{name}", s.configChange(http.StatusOK, func(r *http.Request, text, _ []byte) ([]byte, error) {
		return edit.DeleteService(text, r.PathValue("name"))
	}))
	mux.HandleFunc("POST /api/v1/config/services/{name}/real-servers", s.configChange(http.StatusCreated, func(r *http.Request, text, body []byte) ([]byte, error) {
		return edit.AddServer(text, r.PathValue("name"), body)
	}))
	mux.HandleFunc("PUT /api/v1/config/services/{name}/real-servers/{server}", s.configChange(http.StatusOK, func(r *http.Request, text, body []byte) ([]byte, error) {
		return edit.ReplaceServer(text, r.PathValue("name"), r.PathValue("server"), body)
	}))
	mux.HandleFunc("DELETE /api/v1/config/services/{name}/real-servers/{server}", s.configChange(http.StatusOK, func(r *http.Request, text, _ []byte) ([]byte, error) {
		return edit.DeleteServer(text, r.PathValue("name"), r.PathValue("server"))
	}))
	mux.HandleFunc("GET /api/v1/config/alerts", s.handleAlertsGet)
	mux.HandleFunc("PUT /api/v1/config/alerts", s.configChange(http.StatusOK, func(r *http.Request, text, body []byte) ([]byte, error) {
		body, err := keepPassword(text, body)
		if err != nil {
			return nil, err
		}
		return edit.SetSection(text, "alerts", body)
	}))
	mux.HandleFunc("DELETE /api/v1/config/staged", s.handleConfigDiscard)
	mux.HandleFunc("POST /api/v1/config/apply", s.handleConfigApply)
	mux.HandleFunc("GET /api/v1/config/file", s.handleConfigFile)
}

// configFile returns the configuration file's name, or answers 404 when the
// server was built without one.
func (s *Server) configFile(w http.ResponseWriter) (string, bool) {
	if s.cfg.ConfigFile == "" {
		writeError(w, http.StatusNotFound, "configuration through the API is off: this server was started without a configuration file")
		return "", false
	}
	return s.cfg.ConfigFile, true
}

// current returns the staged text, or the file's when nothing is staged.
// Call with st.mu held.
func (s *Server) current(file string) ([]byte, error) {
	if s.web.stage.base != nil {
		return s.web.stage.text, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, unwrapPath(err))
	}
	return data, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// state builds the answer from text. Call with st.mu held.
func (s *Server) state(file string, text []byte) (ConfigState, error) {
	svcs, err := edit.Services(text)
	if err != nil {
		return ConfigState{}, err
	}
	st := ConfigState{File: file, Staged: s.web.stage.base != nil, Services: svcs}
	if st.Staged {
		st.Diff = edit.Diff(maskSecrets(s.web.stage.base), maskSecrets(s.web.stage.text))
	}
	return st, nil
}

// writeState answers the current state. Call with st.mu held.
func (s *Server) writeState(w http.ResponseWriter, file string) {
	text, err := s.current(file)
	if err == nil {
		var st ConfigState
		if st, err = s.state(file, text); err == nil {
			writeJSON(w, http.StatusOK, st)
			return
		}
	}
	writeError(w, http.StatusInternalServerError, err.Error())
}

func (s *Server) handleConfigGet(w http.ResponseWriter, r *http.Request) {
	file, ok := s.configFile(w)
	if !ok {
		return
	}
	s.web.stage.mu.Lock()
	defer s.web.stage.mu.Unlock()
	s.writeState(w, file)
}

// configChange returns a handler that stages change, or answers why not (404
// for an unknown name, 400 with every problem for an invalid result).
func (s *Server) configChange(status int, change func(r *http.Request, text, body []byte) ([]byte, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		file, ok := s.configFile(w)
		if !ok {
			return
		}
		if strings.HasPrefix(r.URL.Path, "/api/v1/config/services") {
			if ha := s.overview().HA; ha != nil && ha.ConfigSync == "secondary" {
				writeError(w, http.StatusConflict, "this node is the secondary of an HA pair: it runs the virtual_services its primary ("+
					ha.Peer+") pushes; change them on the primary")
				return
			}
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, "read the request body: "+err.Error())
			return
		}
		if r.Method == http.MethodDelete {
			body = nil
		}
		s.web.stage.mu.Lock()
		defer s.web.stage.mu.Unlock()
		text, err := s.current(file)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		next, err := change(r, text, body)
		switch {
		case errors.Is(err, edit.ErrNotFound):
			writeError(w, http.StatusNotFound, err.Error())
			return
		case err != nil:
			writeJSON(w, http.StatusBadRequest, ProblemsAnswer{Errors: []edit.Problem{{Message: err.Error()}}})
			return
		}
		if problems := edit.Check(file, next); problems != nil {
			writeJSON(w, http.StatusBadRequest, ProblemsAnswer{Errors: problems})
			return
		}
		if s.web.stage.base == nil {
			s.web.stage.base = text
		}
		s.web.stage.text = next
		if bytes.Equal(s.web.stage.base, s.web.stage.text) { // changed back: nothing staged
			s.web.stage.base, s.web.stage.text = nil, nil
		}
		s.log.Info().Str("user", userOf(r)).Str("source", remoteAddr(r).String()).Str("change", r.Method+" "+r.URL.Path).
			Msg("API: configuration change staged (POST /api/v1/config/apply writes and reloads it)")
		st, err := s.state(file, next)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, status, st)
	}
}

// AlertsState is the answer to GET /api/v1/config/alerts: the alerts section
// as staged (or as in the file), null when there is none.
type AlertsState struct {
	Alerts any  `json:"alerts"`
	Staged bool `json:"staged"`
}

// PasswordKept stands for alerts.email.password in GET /api/v1/config/alerts,
// which never shows it; a PUT with it keeps the password the file has.
const PasswordKept = "(unchanged)"

// keepPassword puts the file's alerts.email.password back into body where body
// says PasswordKept.
func keepPassword(text, body []byte) ([]byte, error) {
	var b map[string]any
	if json.Unmarshal(body, &b) != nil {
		return body, nil // not an object: SetSection says what is wrong
	}
	email, _ := b["email"].(map[string]any)
	if email == nil || email["password"] != PasswordKept {
		return body, nil
	}
	cur, err := edit.Section(text, "alerts")
	if err != nil {
		return nil, err
	}
	m, _ := cur.(map[string]any)
	old, _ := m["email"].(map[string]any)
	if old == nil || old["password"] == nil {
		return nil, errors.New("alerts.email.password: there is no password to keep: type one")
	}
	email["password"] = old["password"]
	return json.Marshal(b)
}

func (s *Server) handleAlertsGet(w http.ResponseWriter, r *http.Request) {
	file, ok := s.configFile(w)
	if !ok {
		return
	}
	s.web.stage.mu.Lock()
	defer s.web.stage.mu.Unlock()
	text, err := s.current(file)
	var v any
	if err == nil {
		v, err = edit.Section(text, "alerts")
	}
	if m, ok := v.(map[string]any); ok {
		if email, ok := m["email"].(map[string]any); ok && email["password"] != nil {
			email["password"] = PasswordKept
		}
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, AlertsState{Alerts: v, Staged: s.web.stage.base != nil})
}

func (s *Server) handleConfigDiscard(w http.ResponseWriter, r *http.Request) {
	file, ok := s.configFile(w)
	if !ok {
		return
	}
	s.web.stage.mu.Lock()
	defer s.web.stage.mu.Unlock()
	s.web.stage.base, s.web.stage.text = nil, nil
	s.writeState(w, file)
}
