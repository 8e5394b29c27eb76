package lab

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// SetVOSMedia restarts real server server's vossim with its media listeners (on) or
// without any (off: neither 1935, 554 nor MediaPorts), so that real media servers
// (package lab/media) can listen on those ports in its namespace. HTTP, HTTPS,
// /admin/status and the control listener stay; the restart takes a fraction of a second,
// during which /admin/status does not answer (one failed health check at most with the
// usual fall of 3), and the status mode and traffic counters start afresh (Healthy, zero).
// Nothing happens when vossim already runs as asked. StartVOS must have been called.
func (l *Lab) SetVOSMedia(server string, on bool) error {
	s, err := l.Server(server)
	if err != nil {
		return err
	}
	l.mu.Lock()
	p := l.vos[server]
	closed := l.closed
	if p != nil && p.media != on {
		delete(l.vos, server)
	}
	l.mu.Unlock()
	switch {
	case closed:
		return errors.New("restart vossim: lab is closed")
	case p == nil:
		return fmt.Errorf("restart vossim %s: not running (call StartVOS first)", server)
	case p.media == on:
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
	if err := p.wait(server, time.After(3*time.Second)); err != nil {
		return fmt.Errorf("restart vossim %s: %w", server, err)
	}
	if err := l.startVOS(s, p.bin, on); err != nil {
		return err
	}
	return l.waitVOS(s)
}
