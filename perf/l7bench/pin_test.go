package l7bench

import (
	"os/exec"
	"testing"
)

// TestOnCPU: a process started in onCPU may run on that CPU only, from its start;
// one started outside it keeps the machine's CPUs (checkPinned says so).
func TestOnCPU(t *testing.T) {
	if numCPU() < 2 {
		t.Skip("needs 2 CPUs to tell pinned from unpinned")
	}
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "5")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	var pinned *exec.Cmd
	if err := onCPU(1, func() error { pinned = start(); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := checkPinned(pinned.Process.Pid, 1); err != nil {
		t.Errorf("started in onCPU(1): %v", err)
	}
	free := start()
	if err := checkPinned(free.Process.Pid, 1); err == nil {
		t.Errorf("a process started after onCPU returned is pinned too: the affinity was not restored")
	}
}
