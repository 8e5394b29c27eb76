package pipeline

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestParseBoundsChecks fails when the compiler keeps a bounds check in parse.go: the
// parser is written (length checks, then reslicing) so that it needs none. Like
// net/netip's inlining_test.go, it rebuilds the package with compiler diagnostics.
func TestParseBoundsChecks(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds the package; skipped with -short")
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goTool, "build", "-o", "/dev/null",
		"-gcflags=-d=ssa/check_bce/debug=1", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var checks []string
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "parse.go:") && strings.Contains(line, "Found Is") {
			checks = append(checks, strings.TrimSpace(line))
		}
	}
	if len(checks) > 0 {
		t.Errorf("bounds checks left in the parser:\n%s", strings.Join(checks, "\n"))
	}
}
