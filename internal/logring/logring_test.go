package logring

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestRing(t *testing.T) {
	r := New(3)
	log := zerolog.New(r).With().Timestamp().Logger()
	log.Debug().Msg("d1")
	log.Info().Str("server", "HT1").Msg("i2")
	log.Warn().Msg("w3")
	log.Error().Msg("e4") // pushes d1 out

	tests := []struct {
		name  string
		after uint64
		min   zerolog.Level
		limit int
		want  string
	}{
		{"all kept", 0, zerolog.DebugLevel, 0, "i2 w3 e4"},
		{"warn and above", 0, zerolog.WarnLevel, 0, "w3 e4"},
		{"after a sequence number", 3, zerolog.DebugLevel, 0, "e4"},
		{"the last of them", 0, zerolog.DebugLevel, 2, "w3 e4"},
		{"nothing new", 4, zerolog.DebugLevel, 0, ""},
	}
	for _, tt := range tests {
		lines, last := r.Lines(tt.after, tt.min, tt.limit)
		var msgs []string
		for _, l := range lines {
			msgs = append(msgs, l.Message)
		}
		if got := strings.Join(msgs, " "); got != tt.want || last != 4 {
			t.Errorf("%s: %q (last %d), want %q (last 4)", tt.name, got, last, tt.want)
		}
	}
	all, _ := r.Lines(1, zerolog.DebugLevel, 0)
	if all[0].Fields["server"] != "HT1" || all[0].Level != "info" || all[0].Time == "" || all[0].Seq != 2 {
		t.Errorf("line: %+v", all[0])
	}
}

func TestLongLineIsCut(t *testing.T) {
	r := New(2)
	r.Write([]byte(`{"level":"info","message":"` + strings.Repeat("x", 2*MaxLine) + `"}`))
	lines, _ := r.Lines(0, zerolog.DebugLevel, 0)
	if len(lines) != 1 || len(lines[0].Message) != MaxLine || lines[0].Fields["truncated"] != true {
		t.Fatalf("long line kept as %d bytes, fields %v", len(lines[0].Message), lines[0].Fields)
	}
}
