package api

import (
	"encoding/json"
	"testing"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/internal/logring"
)

func TestLogsEndpoint(t *testing.T) {
	ring := logring.New(100)
	log := zerolog.New(ring).With().Timestamp().Logger()
	s, err := New(Config{Listen: "127.0.0.1:0", StateDir: t.TempDir(), Users: testUsers(t), Logs: ring}, newFake(), log)
	if err != nil {
		t.Fatal(err)
	}
	log.Warn().Str("server", "HT1").Msg("real server down")
	log.Debug().Msg("noise")
	tests := []struct {
		query string
		code  int
		want  []string // messages
	}{
		{"", 200, nil}, // filled below: info and above, the API's own lines too
		{"?level=warn", 200, []string{"real server down"}},
		{"?level=debug&limit=1", 200, []string{"noise"}},
		{"?level=loud", 400, nil},
		{"?after=x", 400, nil},
	}
	for _, tt := range tests {
		w := serve(s, "GET", "/api/v1/logs"+tt.query, true)
		if w.Code != tt.code {
			t.Errorf("%s: %d %s", tt.query, w.Code, w.Body)
			continue
		}
		if tt.code != 200 || tt.want == nil {
			continue
		}
		var a LogsAnswer
		json.Unmarshal(w.Body.Bytes(), &a)
		var got []string
		for _, l := range a.Lines {
			got = append(got, l.Message)
		}
		if len(got) != len(tt.want) || got[0] != tt.want[0] || a.Last < 2 {
			t.Errorf("%s: %q (last %d), want %q", tt.query, got, a.Last, tt.want)
		}
	}
	var a LogsAnswer
	json.Unmarshal(serve(s, "GET", "/api/v1/logs?level=warn", true).Body.Bytes(), &a)
	if a.Lines[0].Fields["server"] != "HT1" || a.Lines[0].Level != "warn" {
		t.Errorf("line %+v", a.Lines[0])
	}
	json.Unmarshal(serve(s, "GET", "/api/v1/logs?level=debug&after="+jsonNum(a.Last), true).Body.Bytes(), &a)
	if len(a.Lines) != 0 {
		t.Errorf("after the last line: %+v", a.Lines)
	}

	plain := newTestServer(t, newFake(), nil)
	if w := serve(plain, "GET", "/api/v1/logs", true); w.Code != 404 {
		t.Errorf("without a ring: %d", w.Code)
	}
}

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }
