package l7bench

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSystemProfileCmd: the download profile is system-wide (-a, no -p: the veth's
// NAPI thread and softirqs are not the proxy's threads) and its file names the
// proxy's pid, which `perf report --pid` needs; nothing runs without a directory.
func TestSystemProfileCmd(t *testing.T) {
	cases := []struct {
		name     string
		dir      string
		pid      int
		setup    Setup
		wantFile string // "" = no command
	}{
		{"no directory", "", 42, Setup{TwoVIP, false}, ""},
		{"no process", "/tmp/p", 0, Setup{TwoVIP, false}, ""},
		{"two-vip unpinned", "/tmp/p", 42, Setup{TwoVIP, false}, "/tmp/p/two-vip-unpinned-medialb-download4-pid42.perf.data"},
		{"l7-only pinned", "/tmp/p", 7, Setup{L7Only, true}, "/tmp/p/l7-only-pinned-medialb-download4-pid7.perf.data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := systemProfileCmd(c.dir, c.pid, 3*time.Second, c.setup, Medialb, "download4")
			if c.wantFile == "" {
				if cmd != nil {
					t.Fatalf("got %v, want no command", cmd.Args)
				}
				return
			}
			if cmd == nil {
				t.Fatal("no command")
			}
			args := cmd.Args
			if !slices.Contains(args, "-a") || slices.Contains(args, "-p") {
				t.Errorf("args %v: want a system-wide recording (-a), not one process (-p)", args)
			}
			if i := slices.Index(args, "-o"); i < 0 || args[i+1] != c.wantFile {
				t.Errorf("args %v: want -o %s", args, c.wantFile)
			}
			if got := strings.Join(args[len(args)-2:], " "); got != "sleep 3.0" {
				t.Errorf("records for %q, want sleep 3.0", got)
			}
		})
	}
}
