package l7bench

import (
	"strings"
	"testing"
	"time"
)

// TestMarkdownSetups: the summary has one line per setup with medialb/HAProxy ratios
// of that setup's medians and the goals' verdict; each setup has its table.
func TestMarkdownSetups(t *testing.T) {
	cfg := Config{BinDir: "bin", Repeats: 1, Proxies: []string{Medialb, HAProxy}}.withDefaults()
	cfg.Setups = []Setup{{TwoVIP, false}, {L7Only, true}}
	r := &Results{Config: cfg, Start: time.Now(), Values: map[string]map[Point][]Measure{}}
	put := func(s Setup, proxy string, up, down, rate float64) {
		r.Values[Key(s, proxy)] = map[Point][]Measure{
			"stream1": {{Value: up}}, "download4": {{Value: down}}, "rate": {{Value: rate}},
		}
	}
	put(cfg.Setups[0], Medialb, 1, 2, 900)
	put(cfg.Setups[0], HAProxy, 2, 2, 1000)
	put(cfg.Setups[1], Medialb, 3, 3, 950)
	put(cfg.Setups[1], HAProxy, 3, 2, 1000)
	md := r.Markdown("medialb-l7bench")
	for _, want := range []string{
		"| two-vip, unpinned | 0.50 | 1.00 | 0.90 | **not met** |",
		"| l7-only, pinned | 1.00 | 1.50 | 0.95 | met |",
		"#### two-vip, unpinned", "#### l7-only, pinned",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in\n%s", want, md)
		}
	}
}
