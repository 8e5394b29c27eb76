package cdp

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Browser is a Chromium started by Launch, with a client attached to its page.
type Browser struct {
	*Client
	cmd    *exec.Cmd
	exited chan struct{}
}

// Launch starts cmd (a Chromium run with Flags(profile), possibly wrapped, e.g. by
// `ip netns exec`) in a process group of its own, waits up to timeout for its
// DevTools port and attaches to its page through dial (nil: DefaultDial). Close
// stops it with its helper processes.
func Launch(ctx context.Context, cmd *exec.Cmd, profile string, dial DialFunc, timeout time.Duration) (*Browser, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helper processes go with it
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	b := &Browser{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(b.exited) }() //nolint:errcheck // killed on purpose at Close
	startCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	port, err := ActivePort(startCtx, profile)
	if err != nil {
		b.stop()
		return nil, fmt.Errorf("chromium did not start: %w\n%s", err, stderr.String())
	}
	if b.Client, err = AttachPage(startCtx, port, dial); err != nil {
		b.stop()
		return nil, fmt.Errorf("attach to chromium's page: %w", err)
	}
	return b, nil
}

// Close closes the page connection and stops the browser: SIGTERM to its process
// group, SIGKILL after 5 s.
func (b *Browser) Close() error {
	if b.Client != nil {
		b.Client.Close()
	}
	b.stop()
	return nil
}

func (b *Browser) stop() {
	syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM) //nolint:errcheck // may be gone
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck
		<-b.exited
	}
}
