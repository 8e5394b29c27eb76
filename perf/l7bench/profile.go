package l7bench

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// profiler records a CPU profile of a proxy process with `perf record -g` (user and
// kernel stacks of all its threads: most of a proxy's time is the kernel's network
// stack) while a point runs. Read the files with `perf report -i FILE`.
type profiler struct {
	cmd *exec.Cmd
}

// startProfile starts perf on pid for d into dir/NAME.perf.data, NAME made of the
// setup, proxy and point; nil when dir is empty or perf fails to start.
func startProfile(dir string, pid int, d time.Duration, setup Setup, proxy, point string) *profiler {
	if dir == "" || pid == 0 {
		return nil
	}
	name := strings.NewReplacer(", ", "-", " ", "-").Replace(setup.Name()) + "-" + proxy + "-" + point + ".perf.data"
	cmd := exec.Command("perf", "record", "-q", "-g", "-F", "999", "-p", strconv.Itoa(pid),
		"-o", filepath.Join(dir, name), "--", "sleep", strconv.FormatFloat(d.Seconds(), 'f', 1, 64))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil
	}
	return &profiler{cmd: cmd}
}

// wait waits for perf to write its file.
func (p *profiler) wait() {
	if p != nil {
		p.cmd.Wait()
	}
}
