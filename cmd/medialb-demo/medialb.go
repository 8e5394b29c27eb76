package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/medialb/medialb/lab"
)

// writeConfig rewrites the example onto the lab: the load balancer's interface, a
// state directory of the demo's own, the API on the load balancer's address, and
// health checks every second so that the failover shows within seconds.
func (d *demo) writeConfig() (string, error) {
	src, err := os.ReadFile(d.example)
	if err != nil {
		return "", err
	}
	lb := d.lab.LBs[0]
	set := map[string]string{
		"node.interface": lb.Link,
		"node.state_dir": filepath.Join(d.tmp, "state"),
		"api.listen":     lb.Addr4.String() + ":9443",
	}
	for i := 0; i < 2; i++ {
		p := fmt.Sprintf("virtual_services.%d.health_check.", i)
		set[p+"interval"] = "1s"
		set[p+"timeout"] = "500ms"
	}
	out, err := rewrite(src, set)
	if err != nil {
		return "", fmt.Errorf("rewrite %s: %w", d.example, err)
	}
	path := filepath.Join(d.tmp, "harmonic-vos.yaml")
	for k, v := range set {
		fmt.Printf("   %-42s %s\n", k+":", v)
	}
	return path, os.WriteFile(path, out, 0o600)
}

func (d *demo) check(cfg string) error {
	out, err := exec.Command(filepath.Join(d.bin, "medialb"), "check", "--config", cfg).CombinedOutput()
	fmt.Printf("   $ medialb check --config %s\n   %s", cfg, out)
	if err != nil {
		return fmt.Errorf("medialb check: %w", err)
	}
	return nil
}

// process is a medialb run in the load balancer's namespace, with its JSON log
// followed: state changes and errors are echoed as they come.
type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error

	mu     sync.Mutex
	events []map[string]any
}

func startMedialb(ctx context.Context, l *lab.Lab, bin, cfg, logPath string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &process{log: logPath, done: make(chan struct{})}
	p.cmd = lab.Exec(l.LBs[0].NS, bin, "run", "--config", cfg)
	p.cmd.Stderr = f
	p.cmd.Stdout = f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	fmt.Printf("   $ ip netns exec %s %s run --config %s   (log: %s)\n", l.LBs[0].NS, bin, cfg, logPath)
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start medialb: %w", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	go p.follow(ctx)
	return p, nil
}

// follow reads the log as it grows and echoes the lines a person wants to see.
func (p *process) follow(ctx context.Context) {
	f, err := os.Open(p.log)
	if err != nil {
		return
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var partial string
	for {
		line, err := r.ReadString('\n')
		partial += line
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-p.done:
				if line == "" {
					return
				}
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		line, partial = partial, ""
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil {
			fmt.Printf("   medialb| %s", line)
			continue
		}
		p.mu.Lock()
		p.events = append(p.events, ev)
		p.mu.Unlock()
		if lvl, _ := ev["level"].(string); lvl == "warn" || lvl == "error" || interesting(ev) {
			fmt.Printf("   medialb| %s\n", render(ev))
		}
	}
}

func interesting(ev map[string]any) bool {
	switch ev["message"] {
	case "real server state", "medialb running", "layer-4 dataplane attached", "configuration reloaded",
		"stopped; interface left as it was", "dataplane counters", "real server MAC learned", "virtual service has real servers again":
		return true
	}
	return false
}

func render(ev map[string]any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-5v %v", ev["level"], ev["message"])
	for _, k := range []string{"service", "server", "state", "reason", "cause", "address", "mac", "vip", "xdp_mode", "zero_copy", "workers",
		"forwarded", "malformed", "no_service", "no_server", "mac_unresolved", "tx_full", "error", "problem", "summary"} {
		if v, ok := ev[k]; ok {
			fmt.Fprintf(&b, " %s=%v", k, v)
		}
	}
	return b.String()
}

// waitFor waits until an event matching fn was logged (counting from index from).
func (p *process) waitFor(ctx context.Context, from int, timeout time.Duration, what string, fn func(map[string]any) bool) (int, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for i := from; i < len(p.events); i++ {
			if fn(p.events[i]) {
				p.mu.Unlock()
				return i, nil
			}
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-p.done:
			return 0, fmt.Errorf("medialb exited (%v) while waiting for %s; log: %s", p.err, what, p.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("no %s within %s; log: %s", what, timeout, p.log)
}

func (p *process) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.events)
}

// waitStarted waits for medialb to say it runs.
func (p *process) waitStarted(ctx context.Context, timeout time.Duration) error {
	_, err := p.waitFor(ctx, 0, timeout, "start", func(ev map[string]any) bool { return ev["message"] == "medialb running" })
	return err
}

// stop sends SIGTERM and waits; graceful says whether a failure to stop cleanly is an error.
func (p *process) stop(graceful bool) error {
	select {
	case <-p.done:
		if graceful && p.err != nil {
			return fmt.Errorf("medialb exited early: %v; log: %s", p.err, p.log)
		}
		return nil
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("medialb did not stop within 15s of SIGTERM; killed")
	}
	time.Sleep(100 * time.Millisecond) // let follow print the last lines
	if graceful && p.err != nil {
		return fmt.Errorf("medialb exit: %v; log: %s", p.err, p.log)
	}
	return nil
}
