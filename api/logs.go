package api

import (
	"net/http"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/internal/logring"
)

// LogsAnswer is the answer to GET /api/v1/logs.
type LogsAnswer struct {
	Lines []logring.Line `json:"lines"`
	// Last is the sequence number of the last line written: ask with after=Last
	// for the lines that follow (live follow).
	Last uint64 `json:"last"`
}

// maxLogLines bounds one answer.
const maxLogLines = 2000

// handleLogs answers the logger's last lines: ?level=debug|info|warn|error (at
// least that level; default info), ?after=SEQ (only newer lines), ?limit=N
// (the newest N, default and at most 2000).
func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Logs == nil {
		writeError(w, http.StatusNotFound, "logs are not kept by this server")
		return
	}
	q := r.URL.Query()
	least := zerolog.InfoLevel
	if v := q.Get("level"); v != "" {
		l, err := zerolog.ParseLevel(v)
		if err != nil || l == zerolog.NoLevel {
			writeError(w, http.StatusBadRequest, "level "+strconv.Quote(v)+": want debug, info, warn or error")
			return
		}
		least = l
	}
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "after "+strconv.Quote(v)+": want a line's sequence number")
			return
		}
		after = n
	}
	limit := maxLogLines
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, "limit "+strconv.Quote(v)+": want a positive number")
			return
		}
		limit = min(n, maxLogLines)
	}
	lines, last := s.cfg.Logs.Lines(after, least, limit)
	writeJSON(w, http.StatusOK, LogsAnswer{Lines: lines, Last: last})
}
