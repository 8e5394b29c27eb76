package l7bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// onCPU runs start (which starts a proxy process) on a thread allowed only on cpu, so
// the process inherits that affinity from its first instruction: the Go runtime then
// sizes GOMAXPROCS to 1 and HAProxy its thread count to 1, as `taskset -c CPU PROXY`
// would. cpu < 0 runs start as it is.
func onCPU(cpu int, start func() error) error {
	if cpu < 0 {
		return start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return fmt.Errorf("pin proxy: read this thread's CPU affinity: %w", err)
	}
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return fmt.Errorf("pin proxy to CPU %d: %w", cpu, err)
	}
	err := start()
	if rerr := unix.SchedSetaffinity(0, &old); rerr != nil && err == nil {
		err = fmt.Errorf("pin proxy: restore this thread's CPU affinity: %w", rerr)
	}
	return err
}

// checkPinned checks that every thread of process pid may run on cpu only.
func checkPinned(pid, cpu int) error {
	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "status"))
	if err != nil || len(tasks) == 0 {
		return fmt.Errorf("check pinning of process %d: no threads found (%v)", pid, err)
	}
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok && strings.TrimSpace(v) != strconv.Itoa(cpu) {
				return fmt.Errorf("process %d thread %s may run on CPUs %s, want only %d", pid, filepath.Base(filepath.Dir(t)), strings.TrimSpace(v), cpu)
			}
		}
	}
	return nil
}
