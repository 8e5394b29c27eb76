package api

import (
	"errors"
	"net/http"
)

// Maintainer is implemented by a [Source] that can restart its parts, for the
// WebUI's Maintenance page. Each method returns a sentence for the operator.
type Maintainer interface {
	// RestartL7 closes and reopens the layer-7 listeners.
	RestartL7() (string, error)
	// RestartKeepalived restarts the HA pair's keepalived.
	RestartKeepalived() (string, error)
}

// MaintenanceResult is the answer to a successful restart.
type MaintenanceResult struct {
	Result string `json:"result"`
}

func (s *Server) maintenanceRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/maintenance/restart-l7", s.restart("layer-7 listeners", Maintainer.RestartL7))
	mux.HandleFunc("POST /api/v1/maintenance/restart-keepalived", s.restart("keepalived", Maintainer.RestartKeepalived))
}

func (s *Server) restart(what string, do func(Maintainer) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m, ok := s.src.(Maintainer)
		if !ok {
			writeError(w, http.StatusNotFound, "this node cannot restart its "+what)
			return
		}
		res, err := do(m)
		who := s.log.With().Str("user", userOf(r)).Str("source", remoteAddr(r).String()).Str("restart", what).Logger()
		if err != nil {
			who.Warn().Err(err).Msg("API: restart failed")
			status := http.StatusInternalServerError
			if errors.Is(err, ErrNotRunHere) {
				status = http.StatusConflict
			}
			writeError(w, status, err.Error())
			return
		}
		who.Info().Str("result", res).Msg("API: restarted by an operator")
		writeJSON(w, http.StatusOK, MaintenanceResult{Result: res})
	}
}

// ErrNotRunHere may be wrapped by a Maintainer's error for a part the node does not
// run (no ha section: no keepalived); the API answers 409.
var ErrNotRunHere = errors.New("not run by this node")
