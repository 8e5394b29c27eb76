package l7bench

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startSystemProfile records a system-wide `perf record -a -g` profile while a
// point runs, into dir/NAME-pidPID.perf.data. System-wide because a bulk
// transfer's kernel work does not all run in the proxy's threads: the NAPI
// polls of the veths and the softirqs that deliver the proxy's ACKs to the
// servers run wherever the kernel schedules them. `perf report -i FILE --pid PID`
// shows the proxy's own share, without --pid the whole machine's; nil when dir
// is empty or perf fails to start.
func startSystemProfile(dir string, pid int, d time.Duration, setup Setup, proxy, point string) *profiler {
	cmd := systemProfileCmd(dir, pid, d, setup, proxy, point)
	if cmd == nil {
		return nil
	}
	if err := cmd.Start(); err != nil {
		return nil
	}
	return &profiler{cmd: cmd}
}

// systemProfileCmd is the perf command of startSystemProfile, nil when dir is
// empty or pid is 0.
func systemProfileCmd(dir string, pid int, d time.Duration, setup Setup, proxy, point string) *exec.Cmd {
	if dir == "" || pid == 0 {
		return nil
	}
	name := strings.NewReplacer(", ", "-", " ", "-").Replace(setup.Name()) + "-" + proxy + "-" + point +
		"-pid" + strconv.Itoa(pid) + ".perf.data"
	cmd := exec.Command("perf", "record", "-q", "-a", "-g", "-F", "999",
		"-o", filepath.Join(dir, name), "--", "sleep", strconv.FormatFloat(d.Seconds(), 'f', 1, 64))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}
