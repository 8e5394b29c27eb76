package depscheck

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot returns the module root (where go.mod is) and its module path.
func repoRoot(t *testing.T) (string, string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			for _, l := range strings.Split(string(data), "\n") {
				if m, ok := strings.CutPrefix(l, "module "); ok {
					return dir, strings.TrimSpace(m)
				}
			}
			t.Fatalf("%s/go.mod has no module line", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// TestProgramsListed fails when the tree executes a program that
// scripts/packages.list does not name: such a program is not installed by
// `make test`, `make demo` or `make bench` on a fresh machine.
func TestProgramsListed(t *testing.T) {
	root, module := repoRoot(t)
	list := filepath.Join(root, "scripts", "packages.list")
	progs, problems, err := readList(list)
	if err != nil {
		t.Fatalf("read the package list: %v", err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	execs, err := scanTree(root, module)
	if err != nil {
		t.Fatalf("scan the Go sources: %v", err)
	}
	seen := map[string]bool{}
	for _, e := range execs {
		seen[e.Program] = true
		if _, ok := progs[e.Program]; !ok {
			t.Errorf("%s: executes %q, which scripts/packages.list does not name: add it with its Debian package and the targets that need it (or do without it)", e.Pos, e.Program)
		}
	}
	// The scan must see the executions everyone knows of, or it sees nothing.
	for _, want := range []string{"ip", "keepalived", "ffmpeg", "nginx", "sysctl", "setpriv", "chromium", "iperf3"} {
		if !seen[want] {
			t.Errorf("the scan found no execution of %s: it misses the tree's launchers", want)
		}
	}
	var unused []string
	for p := range progs {
		if !seen[p] {
			unused = append(unused, p)
		}
	}
	slices.Sort(unused)
	t.Logf("%d executions of %d programs; listed but not found executed from Go (run by tools or scripts): %s",
		len(execs), len(seen), strings.Join(unused, " "))
}

// TestScanFinds runs the scan on small trees, one way of running a program each.
func TestScanFinds(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"exec.Command", `package x
import "os/exec"
func f() { exec.Command("prog-x", "net").Run() }`, []string{"prog-x"}},
		{"CommandContext and LookPath", `package x
import ("context"; "os/exec")
func f() { exec.CommandContext(context.Background(), "/usr/sbin/tc"); exec.LookPath("prog-y") }`, []string{"prog-y", "tc"}},
		{"wrapper taking args...", `package x
import "os/exec"
func run(t int, ns string, args ...string) string { out, _ := exec.Command(args[0], args[1:]...).Output(); return string(out) }
func f() { run(1, "ns", "prog-x", "link", "detach") }`, []string{"prog-x"}},
		{"wrapper of a wrapper through ip netns exec", `package x
import "os/exec"
func Exec(ns, name string, args ...string) *exec.Cmd { return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...) }
func run(ns string, args ...string) { Exec(ns, args[0], args[1:]...).Run() }
func f() { run("ns", "prog-x", "prog") }`, []string{"ip", "prog-x"}},
		{"closure, constant and range list", `package x
import "os/exec"
const tool = "prog-z"
func f() {
	look := func(name string) { exec.LookPath(name) }
	look("trafgen")
	exec.Command(tool)
	for _, n := range []string{"a1", "a2"} { exec.LookPath(n) }
}`, []string{"a1", "a2", "prog-z", "trafgen"}},
		{"our own binaries are not looked for", `package x
import ("os/exec"; "path/filepath")
func f(bin string) { exec.Command(filepath.Join(bin, "medialb")); exec.Command("./x"); exec.Command(bin) }`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "x.go"), []byte(tt.src), 0o600); err != nil {
				t.Fatal(err)
			}
			execs, err := scanTree(dir, "example.com/x")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range execs {
				got = append(got, e.Program)
			}
			slices.Sort(got)
			got = slices.Compact(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("found %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMakefileInstallsFromList: every deps target of the Makefile installs through
// scripts/deps.sh from the list (a package list of its own would bypass the check
// above), and names a target the list has packages for.
func TestMakefileInstallsFromList(t *testing.T) {
	root, _ := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	list, err := os.ReadFile(filepath.Join(root, "scripts", "packages.list"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(list), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && !strings.HasPrefix(f[0], "#") && f[1] != "-" {
			for _, target := range strings.Split(f[2], ",") {
				listed[target] = true
			}
		}
	}
	calls := 0
	for i, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.Contains(line, "apt-get") || strings.Contains(line, "dpkg") {
			t.Errorf("Makefile:%d installs packages itself; use scripts/deps.sh TARGET", i+1)
		}
		_, rest, ok := strings.Cut(line, "scripts/deps.sh")
		if !ok {
			continue
		}
		calls++
		for _, target := range strings.Fields(rest) {
			if !listed[target] {
				t.Errorf("Makefile:%d: scripts/deps.sh %s, but scripts/packages.list has no package for target %q", i+1, target, target)
			}
		}
	}
	if calls == 0 {
		t.Error("the Makefile never calls scripts/deps.sh")
	}
}
