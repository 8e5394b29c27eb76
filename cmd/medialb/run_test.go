package main

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestWaitSignal: a SIGTERM behind a burst of SIGHUPs ends the wait after at most
// the reload in progress, and SIGHUPs that arrived meanwhile coalesce.
func TestWaitSignal(t *testing.T) {
	term := make(chan os.Signal, 1)
	hup := make(chan os.Signal, 1)
	reloads := 0
	onHUP := func() {
		reloads++
		if reloads == 1 {
			// During the first reload: 50 more SIGHUPs, then SIGTERM, delivered
			// as signal.Notify does (never blocking: a full channel drops).
			for range 50 {
				select {
				case hup <- syscall.SIGHUP:
				default:
				}
			}
			select {
			case term <- syscall.SIGTERM:
			default:
				t.Error("SIGTERM dropped")
			}
		}
		time.Sleep(time.Millisecond)
	}
	hup <- syscall.SIGHUP
	done := make(chan os.Signal, 1)
	go func() { done <- waitSignal(term, hup, onHUP) }()
	select {
	case s := <-done:
		if s != syscall.SIGTERM {
			t.Errorf("returned %v, want SIGTERM", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM behind SIGHUPs did not end the wait")
	}
	if reloads != 1 {
		t.Errorf("%d reloads, want 1 (the SIGTERM waiting beside a SIGHUP goes first)", reloads)
	}
}
