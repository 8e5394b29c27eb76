package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestMain lets the test binary act as medialb: with MEDIALB_AS_MAIN=1 it
// runs the command line and exits, so tests can exec it like the real binary
// and see real exit codes, stdout and stderr.
func TestMain(m *testing.M) {
	if os.Getenv("MEDIALB_AS_MAIN") == "1" {
		os.Exit(medialb(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// run execs medialb with args and stdin, returning its exit code and output.
func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "MEDIALB_AS_MAIN=1")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const badConfig = `node:
  interfce: eth0
virtual_services:
  - name: s
    address: 192.0.2.10
    ports: "80,70000"
    layer: 4
    real_servers: [{ address: 192.0.2.21, port: 8080 }]
`

func TestCheck(t *testing.T) {
	bad := writeFile(t, "bad.yaml", badConfig)
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // exact lines
		stderrHas  []string // substrings
		stderrLine []string // exact lines
	}{
		{name: "valid", args: []string{"check", "--config", "../../examples/harmonic-vos.yaml"}, code: 0,
			stdout: []string{"../../examples/harmonic-vos.yaml: ok: 2 virtual services (1 layer-4, 1 layer-7), 4 real servers, 15540 ports"}},
		{name: "valid positional, global flag after", args: []string{"check", "../../examples/harmonic-vos-ha-primary.yaml", "--log-level", "debug"}, code: 0,
			stdout: []string{"../../examples/harmonic-vos-ha-primary.yaml: ok: 2 virtual services (1 layer-4, 1 layer-7), 4 real servers, 15540 ports, HA with 192.168.94.3"}},
		{name: "valid, global flags before", args: []string{"--log-format=console", "--log-level", "warn", "check", "-config=../../examples/harmonic-vos.yaml"}, code: 0,
			stdout: []string{"../../examples/harmonic-vos.yaml: ok: 2 virtual services (1 layer-4, 1 layer-7), 4 real servers, 15540 ports"}},
		{name: "invalid", args: []string{"check", "--config", bad}, code: 1, stderrLine: []string{
			bad + `:2: node: unknown key "interfce" (did you mean "interface"?)`,
			bad + `:2: node.interface is required (the NIC that carries the VIPs, e.g. eth0)`,
			bad + `:6: virtual_services[0].ports: port 70000 is out of range 1..65535`,
			bad + `:8: virtual_services[0].real_servers[0].port: port translation is not possible in direct routing (remove port: the server answers on the port the client used)`,
		}},
		{name: "missing file", args: []string{"check", "--config", "/nonexistent/x.yaml"}, code: 1,
			stderrLine: []string{"/nonexistent/x.yaml: read configuration: no such file or directory"}},
		{name: "no config flag", args: []string{"check"}, code: 2, stderrHas: []string{"--config FILE is required", "usage: medialb check"}},
		{name: "unknown check flag", args: []string{"check", "--conf", "x"}, code: 2, stderrHas: []string{"flag provided but not defined: -conf"}},
		{name: "two files", args: []string{"check", "--config", bad, "extra"}, code: 2, stderrHas: []string{`unexpected argument "extra"`}},
		{name: "check help", args: []string{"check", "--help"}, code: 0, stderrHas: []string{"usage: medialb check --config FILE"}},
		{name: "no command", args: nil, code: 2, stderrHas: []string{"usage: medialb", "check", "passwd"}},
		{name: "help", args: []string{"help"}, code: 0, stdout: nil},
		{name: "unknown command", args: []string{"chek"}, code: 2, stderrHas: []string{`unknown command "chek"`}},
		{name: "bad log format", args: []string{"--log-format", "xml", "check", "--config", bad}, code: 2, stderrHas: []string{`--log-format "xml": want json or console`}},
		{name: "bad log level", args: []string{"check", "--config", bad, "--log-level=loud"}, code: 2, stderrHas: []string{`--log-level "loud"`}},
		{name: "log flag without value", args: []string{"check", "--log-level"}, code: 2, stderrHas: []string{"flag --log-level needs a value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if tt.stdout != nil && strings.TrimRight(stdout, "\n") != strings.Join(tt.stdout, "\n") {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, strings.Join(tt.stdout, "\n"))
			}
			for _, s := range tt.stderrHas {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if tt.stderrLine != nil && strings.TrimRight(stderr, "\n") != strings.Join(tt.stderrLine, "\n") {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr, strings.Join(tt.stderrLine, "\n"))
			}
		})
	}
	if _, out, _ := run(t, "", "help"); !strings.Contains(out, "check    validate a configuration file") || !strings.Contains(out, "passwd ") {
		t.Errorf("help output:\n%s", out)
	}
}

func TestPasswd(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		pw    string // password the hash must match
		err   string
	}{
		{name: "line", stdin: "s3cret pass\nsecond line\n", code: 0, pw: "s3cret pass"},
		{name: "no newline", stdin: "abc", code: 0, pw: "abc"},
		{name: "crlf", stdin: "abc\r\n", code: 0, pw: "abc"},
		{name: "cost", stdin: "abc\n", args: []string{"--cost", "4"}, code: 0, pw: "abc"},
		{name: "empty", stdin: "\n", code: 1, err: "medialb passwd: empty password refused"},
		{name: "no input", stdin: "", code: 1, err: "medialb passwd: empty password refused"},
		{name: "too long", stdin: strings.Repeat("x", 73) + "\n", code: 1, err: "bcrypt takes at most 72 bytes"},
		{name: "bad cost", stdin: "abc\n", args: []string{"--cost", "3"}, code: 2, err: "--cost 3: want 4..31"},
		{name: "argument", stdin: "abc\n", args: []string{"abc"}, code: 2, err: "the password is read from stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.stdin, append([]string{"passwd"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			if tt.err != "" {
				if !strings.Contains(stderr, tt.err) || stdout != "" {
					t.Errorf("stderr %q, stdout %q; want error %q", stderr, stdout, tt.err)
				}
				return
			}
			hash := strings.TrimSuffix(stdout, "\n")
			if strings.Contains(hash, "\n") || !strings.HasPrefix(hash, "$2a$") {
				t.Fatalf("stdout %q is not one bcrypt hash", stdout)
			}
			if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(tt.pw)); err != nil {
				t.Errorf("hash does not match %q: %v", tt.pw, err)
			}
			cost, _ := bcrypt.Cost([]byte(hash))
			if want := 10; len(tt.args) == 0 && cost != want {
				t.Errorf("cost %d, want %d", cost, want)
			}
		})
	}
}

// TestPasswdSecret: --secret prints a different random ha.secret each time,
// one that check takes.
func TestPasswdSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 2 {
		code, out, errOut := run(t, "", "passwd", "--secret")
		s := strings.TrimSuffix(out, "\n")
		if code != 0 || len(s) < 40 || strings.ContainsAny(s, "\n \"'\\") || seen[s] {
			t.Fatalf("exit %d, secret %q (seen before: %v), stderr %s", code, s, seen[s], errOut)
		}
		seen[s] = true
		cfg := writeFile(t, "c.yaml", "node: {interface: eth0}\nha: {peer: 192.0.2.3, priority: 100, router_id: 1, secret: \""+s+"\"}\n"+
			"virtual_services:\n  - {name: s, address: 192.0.2.1, ports: 80, layer: 7, real_servers: [{address: 192.0.2.2}]}\n")
		if code, out, errOut := run(t, "", "check", "--config", cfg); code != 0 {
			t.Errorf("check refused the secret: exit %d\n%s%s", code, out, errOut)
		}
	}
}

// TestPasswdHashIsAccepted feeds a hash from passwd into check.
func TestPasswdHashIsAccepted(t *testing.T) {
	_, hash, _ := run(t, "pw\n", "passwd", "--cost", "4")
	cfg := writeFile(t, "c.yaml", "node: {interface: eth0}\napi:\n  users: [{name: u, password_hash: \""+strings.TrimSpace(hash)+"\"}]\n"+
		"virtual_services:\n  - {name: s, address: 192.0.2.1, ports: 80, layer: 7, real_servers: [{address: 192.0.2.2}]}\n")
	if code, out, errOut := run(t, "", "check", "--config", cfg); code != 0 || !strings.Contains(out, ": ok: 1 virtual service (0 layer-4, 1 layer-7), 1 real server, 1 port") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}

func TestLogger(t *testing.T) {
	var b bytes.Buffer
	l := newLoggerTo(&b, "json", "warn")
	l.Info().Msg("hidden")
	l.Warn().Str("k", "v").Msg("shown")
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || m["message"] != "shown" || m["level"] != "warn" || m["k"] != "v" || m["time"] == nil {
		t.Errorf("json log %q: %v", b.String(), err)
	}
	b.Reset()
	l = newLoggerTo(&b, "console", "debug")
	l.Debug().Msg("hello")
	if s := b.String(); !strings.Contains(s, "DBG hello") || strings.HasPrefix(s, "{") {
		t.Errorf("console log %q", s)
	}
	for _, c := range []struct {
		format, level string
		ok            bool
	}{{"json", "info", true}, {"console", "trace", true}, {"text", "info", false}, {"json", "", false}, {"json", "verbose", false}} {
		if err := checkLogFlags(c.format, c.level); (err == nil) != c.ok {
			t.Errorf("checkLogFlags(%q, %q) = %v", c.format, c.level, err)
		}
	}
}
