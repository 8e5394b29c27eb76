package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLockStateDir: a second lock on one state_dir fails at once and names the
// holder; closing the first (the process ending) frees it.
func TestLockStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	first, err := lockStateDir(dir, "lb1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockStateDir(dir, "lb2")
	want := fmt.Sprintf("state_dir %s is in use by medialb pid %d (node lb1)", dir, os.Getpid())
	if !errors.Is(err, ErrStateDirInUse) || !strings.Contains(err.Error(), want) {
		t.Fatalf("second lock: %v, want %q", err, want)
	}
	first.Close()
	second, err := lockStateDir(dir, "lb2")
	if err != nil {
		t.Fatalf("lock after the first was released: %v", err)
	}
	second.Close()
}

// TestLockStateDirAfterKill: a medialb killed with SIGKILL leaves its lock file,
// but not the lock: the next start takes it.
func TestLockStateDirAfterKill(t *testing.T) {
	if dir := os.Getenv("MEDIALB_LOCK_HELPER"); dir != "" {
		if _, err := lockStateDir(dir, "killed"); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockStateDirAfterKill$")
	cmd.Env = append(os.Environ(), "MEDIALB_LOCK_HELPER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "locked") {
		t.Fatalf("helper: %q", buf[:n])
	}
	if _, err := lockStateDir(dir, "lb1"); !errors.Is(err, ErrStateDirInUse) || !strings.Contains(err.Error(), "(node killed)") {
		t.Fatalf("lock while the helper holds it: %v", err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	f, err := lockStateDir(dir, "lb1")
	if err != nil {
		t.Fatalf("lock after kill -9 of its holder: %v", err)
	}
	f.Close()
	if data, _ := os.ReadFile(filepath.Join(dir, LockFile)); !strings.Contains(string(data), " lb1") {
		t.Errorf("lock file says %q, want this process", data)
	}
}
