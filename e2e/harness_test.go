// Package e2e holds the root-only lab tests that check medialb from outside, as a user
// would: bin/medialb run in a load-balancer namespace with a configuration file,
// real clients in the client namespace, simulated VOS servers behind it, and only the
// contract's commands, config and API. Each test builds its own lab with its own name
// prefix and tears it down even when it fails.
package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// binDir returns the directory with medialb and vossim: $MEDIALB_BIN (make test sets
// it to the freshly built bin/), or a build of this tree into a temporary directory.
func binDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("MEDIALB_BIN"); d != "" {
		return d
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "medialb-e2e-bin-")
		if buildErr != nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		cmd := exec.Command("go", "build", "-o", buildDir+"/", "./cmd/medialb", "./cmd/vossim")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{err, string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("build medialb and vossim: %v", buildErr)
	}
	return buildDir
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// env is one lab with simulated servers and, once started, one medialb.
type env struct {
	t    *testing.T
	lab  *lab.Lab
	dir  string
	bin  string
	proc *lbproc.Process
	cfg  string
}

// newEnv builds a lab (tag: 1-3 characters, unique per test file) and starts vossim on
// every real server.
func newEnv(t *testing.T, tag string, opts lab.Options) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("lab test: needs root for network namespaces and XDP")
	}
	bin := binDir(t)
	opts.Prefix = lab.Prefix(tag)
	l := lab.NewForTest(t, opts)
	if err := l.StartVOS(filepath.Join(bin, "vossim")); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, lab: l, dir: t.TempDir(), bin: bin}
}

// vars are what config templates can use.
type vars struct {
	Iface, StateDir, LB string
}

// writeConfig renders a config template onto the lab and writes it.
func (e *env) writeConfig(tmpl string) string {
	e.t.Helper()
	lb := e.lab.LBs[0]
	tp := template.Must(template.New("cfg").Parse(tmpl))
	var b bytes.Buffer
	if err := tp.Execute(&b, vars{Iface: lb.Link, StateDir: filepath.Join(e.dir, "state"), LB: lb.Addr4.String()}); err != nil {
		e.t.Fatal(err)
	}
	e.cfg = filepath.Join(e.dir, "medialb.yaml")
	if err := os.WriteFile(e.cfg, b.Bytes(), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return e.cfg
}

// start runs medialb with the config template and waits until it runs. The test fails
// if medialb logs an error it did not expect (checked at cleanup by the caller via
// e.errors()).
func (e *env) start(tmpl string) *lbproc.Process {
	e.t.Helper()
	cfg := e.writeConfig(tmpl)
	p, err := lbproc.Start(e.lab, e.lab.LBs[0], filepath.Join(e.bin, "medialb"), cfg, filepath.Join(e.dir, "medialb.log"), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.proc = p
	e.t.Cleanup(func() {
		if err := p.Stop(15 * time.Second); err != nil {
			e.t.Errorf("medialb exit: %v", err)
		}
		if e.t.Failed() {
			e.t.Logf("medialb log:\n%s", p.Log())
		}
	})
	if err := p.WaitStarted(context.Background(), 20*time.Second); err != nil {
		e.t.Fatalf("%v\n%s", err, p.Log())
	}
	return p
}

// waitChecked waits until every real server had its first health verdict (the API's
// overview says so).
func (e *env) waitChecked(timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		code, body, err := e.proc.API(context.Background(), "GET", "9443", "/api/v1/overview", "loadbalancer", "loadbalancer")
		if err == nil && code == 200 && !strings.Contains(string(body), `"health":"unknown"`) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("real servers not health-checked within %s", timeout)
}

// Common configuration pieces. The password of the hash is "loadbalancer".
const apiSection = `
api:
  listen: {{.LB}}:9443
  users:
    - name: loadbalancer
      password_hash: "$2a$10$u0cqovdTwUFe8GZsu.3X/OU4fJQhpx.weaiGm3.Z4VcxMEaEsc/Pm"
`

const nodeSection = `
node:
  name: lb1
  interface: {{.Iface}}
  state_dir: {{.StateDir}}
`
