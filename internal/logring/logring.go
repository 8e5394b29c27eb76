// Package logring keeps the last lines a zerolog logger wrote, for the WebUI's
// Logs page: an io.Writer to put beside the logger's own output
// (zerolog.MultiLevelWriter), and a query by sequence number and level.
//
// Memory is bounded: at most the ring's capacity in lines, each cut to
// MaxLine bytes (DefaultLines x MaxLine = 8 MiB at worst; typical log lines
// are 200-400 bytes, about 1 MiB).
package logring

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// DefaultLines is the number of lines a ring made by New(0) keeps.
const DefaultLines = 2000

// MaxLine bounds one kept line; longer ones are cut and marked "truncated".
const MaxLine = 4096

// Ring is a fixed-size buffer of log lines. Its methods are safe for concurrent
// use. Create it with New.
type Ring struct {
	mu    sync.Mutex
	buf   []entry
	start int    // index of the oldest line
	n     int    // lines held
	seq   uint64 // sequence number of the last line written
}

type entry struct {
	seq  uint64
	data []byte // one JSON object
}

// New returns a ring that keeps the last lines written (DefaultLines when
// lines <= 0).
func New(lines int) *Ring {
	if lines <= 0 {
		lines = DefaultLines
	}
	return &Ring{buf: make([]entry, lines)}
}

// Write keeps p, one JSON log event as zerolog writes it. It never fails.
func (r *Ring) Write(p []byte) (int, error) {
	data := p
	if len(data) > MaxLine {
		data = data[:MaxLine]
	}
	cp := make([]byte, len(data))
	copy(cp, data)
	r.mu.Lock()
	r.seq++
	i := (r.start + r.n) % len(r.buf)
	if r.n == len(r.buf) {
		r.start = (r.start + 1) % len(r.buf)
	} else {
		r.n++
	}
	r.buf[i] = entry{seq: r.seq, data: cp}
	r.mu.Unlock()
	return len(p), nil
}

// Line is one log line as the API answers it.
type Line struct {
	Seq     uint64         `json:"seq"`
	Time    string         `json:"time,omitempty"`
	Level   string         `json:"level"`
	Message string         `json:"message"`
	Fields  map[string]any `json:"fields,omitempty"` // everything else the line carries
}

// Lines returns up to limit lines with a sequence number above after and a
// level of at least min, oldest first, and the sequence number of the last line
// written (to ask for what follows next time).
func (r *Ring) Lines(after uint64, min zerolog.Level, limit int) ([]Line, uint64) {
	r.mu.Lock()
	kept := make([]entry, 0, r.n)
	for k := 0; k < r.n; k++ {
		e := r.buf[(r.start+k)%len(r.buf)]
		if e.seq > after {
			kept = append(kept, e)
		}
	}
	last := r.seq
	r.mu.Unlock()

	out := []Line{}
	for _, e := range kept {
		l := decode(e)
		lvl, err := zerolog.ParseLevel(l.Level)
		if err != nil {
			lvl = zerolog.NoLevel
		}
		if lvl < min && lvl != zerolog.NoLevel {
			continue
		}
		out = append(out, l)
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, last
}

func decode(e entry) Line {
	l := Line{Seq: e.seq}
	var m map[string]any
	if err := json.Unmarshal(e.data, &m); err != nil {
		l.Message, l.Level = string(e.data), "info"
		if len(e.data) == MaxLine {
			l.Fields = map[string]any{"truncated": true}
		}
		return l
	}
	str := func(k string) string {
		s, _ := m[k].(string)
		delete(m, k)
		return s
	}
	l.Level = str(zerolog.LevelFieldName)
	l.Message = str(zerolog.MessageFieldName)
	if t := str(zerolog.TimestampFieldName); t != "" {
		if ts, err := time.Parse(time.RFC3339Nano, t); err == nil {
			t = ts.UTC().Format(time.RFC3339)
		}
		l.Time = t
	}
	if len(m) > 0 {
		l.Fields = m
	}
	return l
}
