package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CPUTimes are one vCPU's times from /proc/stat, in USER_HZ ticks (1/100 s).
type CPUTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// Busy is the time the vCPU was not idle.
func (c CPUTimes) Busy() uint64 { return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal }

// ThreadTime is one thread's CPU time from /proc/PID/task/TID/stat, in ticks,
// and the CPU it last ran on.
type ThreadTime struct {
	PID, TID     int
	Comm         string
	UTime, STime uint64
	CPU          int
}

// CPUSample is a machine's CPU accounting at one moment: per-CPU times, the
// network softirqs handled per CPU (/proc/softirqs) and every thread's times.
type CPUSample struct {
	CPUs    []CPUTimes
	NetRX   []uint64
	NetTX   []uint64
	Threads []ThreadTime
}

// ticksPerSecond is USER_HZ, the unit of /proc/stat and /proc/PID/stat times
// (100 on every Linux architecture the lab runs).
const ticksPerSecond = 100

// ReadCPUSample reads a CPUSample from proc (a procfs mount: "/proc").
func ReadCPUSample(proc string) (CPUSample, error) {
	var s CPUSample
	b, err := os.ReadFile(filepath.Join(proc, "stat"))
	if err != nil {
		return s, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		v := make([]uint64, 8)
		for i := range v {
			if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return s, fmt.Errorf("%s/stat: %q: %w", proc, l, err)
			}
		}
		s.CPUs = append(s.CPUs, CPUTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]})
	}
	if len(s.CPUs) == 0 {
		return s, fmt.Errorf("%s/stat: no cpuN line", proc)
	}
	if b, err := os.ReadFile(filepath.Join(proc, "softirqs")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 || (f[0] != "NET_RX:" && f[0] != "NET_TX:") {
				continue
			}
			var v []uint64
			for _, x := range f[1:] {
				n, _ := strconv.ParseUint(x, 10, 64)
				v = append(v, n)
			}
			if f[0] == "NET_RX:" {
				s.NetRX = v
			} else {
				s.NetTX = v
			}
		}
	}
	s.Threads, err = ReadThreads(proc, 0)
	return s, err
}

// ReadThreads returns the threads of process pid under proc, or of every
// process when pid is 0. Threads that end while it reads are left out.
func ReadThreads(proc string, pid int) ([]ThreadTime, error) {
	pattern := filepath.Join(proc, "[0-9]*", "task", "[0-9]*", "stat")
	if pid != 0 {
		pattern = filepath.Join(proc, strconv.Itoa(pid), "task", "[0-9]*", "stat")
	}
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	var out []ThreadTime
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		t, err := parseThreadStat(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		t.PID, _ = strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(f)))))
		out = append(out, t)
	}
	if pid != 0 && len(out) == 0 {
		return nil, fmt.Errorf("no threads of process %d under %s", pid, proc)
	}
	return out, nil
}

// parseThreadStat parses a /proc/PID/task/TID/stat line: the thread id, its
// name (in parentheses, which may hold spaces and parentheses), utime (field
// 14), stime (15) and processor (39).
func parseThreadStat(line string) (ThreadTime, error) {
	var t ThreadTime
	open, closing := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 1 || closing < open {
		return t, fmt.Errorf("stat line %q: no (comm)", line)
	}
	var err error
	if t.TID, err = strconv.Atoi(strings.TrimSpace(line[:open])); err != nil {
		return t, fmt.Errorf("stat line %q: %w", line, err)
	}
	t.Comm = line[open+1 : closing]
	f := strings.Fields(line[closing+1:]) // f[0] is field 3 (state)
	if len(f) < 37 {
		return t, fmt.Errorf("stat line %q: %d fields after comm, want 37 or more", line, len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	c, err3 := strconv.Atoi(f[36])
	if err1 != nil || err2 != nil || err3 != nil {
		return t, fmt.Errorf("stat line %q: bad utime, stime or processor", line)
	}
	t.UTime, t.STime, t.CPU = u, s, c
	return t, nil
}

// CPU returns g's CPU accounting (the agent reads the guest's /proc).
func (g *Guest) CPU(ctx context.Context) (CPUSample, error) {
	var s CPUSample
	err := g.call(ctx, "GET", "/cpu", nil, &s, 30*time.Second)
	return s, err
}

// HostVCPUTime returns the host CPU time g's QEMU spent in its vCPU threads
// (named "CPU N/TCG" with -name debug-threads=on): the host's cost of running
// the guest's code, without QEMU's device emulation in its other threads (the
// main loop's tap I/O).
func (g *Guest) HostVCPUTime() (time.Duration, error) {
	ts, err := ReadThreads("/proc", g.cmd.Process.Pid)
	if err != nil {
		return 0, fmt.Errorf("%s: QEMU's threads: %w", g.Name, err)
	}
	var ticks uint64
	n := 0
	for _, t := range ts {
		if strings.Contains(t.Comm, "/TCG") {
			ticks += t.UTime + t.STime
			n++
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%s: QEMU (pid %d) has no thread named CPU N/TCG", g.Name, g.cmd.Process.Pid)
	}
	return time.Duration(ticks) * time.Second / ticksPerSecond, nil
}

// cpuUse is what a machine's CPUs did between two samples, in seconds.
type cpuUse struct {
	busy, user, sys, softirq, irq float64
	netRX                         uint64 // NET_RX softirqs handled
	threads                       []threadUse
}

type threadUse struct {
	name string
	secs float64
}

// use returns what happened between a and b; threads are summed by name (the
// digits of per-CPU kernel threads kept) and sorted by time, most first.
func use(a, b CPUSample) cpuUse {
	var u cpuUse
	sec := func(x, y uint64) float64 { return float64(y-x) / ticksPerSecond }
	var sa, sb CPUTimes // sums over the CPUs: ticks add up exactly
	for i := range min(len(a.CPUs), len(b.CPUs)) {
		x, y := a.CPUs[i], b.CPUs[i]
		sa.User, sb.User = sa.User+x.User+x.Nice, sb.User+y.User+y.Nice
		sa.System, sb.System = sa.System+x.System, sb.System+y.System
		sa.SoftIRQ, sb.SoftIRQ = sa.SoftIRQ+x.SoftIRQ, sb.SoftIRQ+y.SoftIRQ
		sa.IRQ, sb.IRQ = sa.IRQ+x.IRQ, sb.IRQ+y.IRQ
		sa.Steal, sb.Steal = sa.Steal+x.Steal, sb.Steal+y.Steal
	}
	u.busy, u.user, u.sys = sec(sa.Busy(), sb.Busy()), sec(sa.User, sb.User), sec(sa.System, sb.System)
	u.softirq, u.irq = sec(sa.SoftIRQ, sb.SoftIRQ), sec(sa.IRQ, sb.IRQ)
	for i := range min(len(a.NetRX), len(b.NetRX)) {
		u.netRX += b.NetRX[i] - a.NetRX[i]
	}
	before := map[int]ThreadTime{}
	for _, t := range a.Threads {
		before[t.TID] = t
	}
	byName := map[string]float64{}
	for _, t := range b.Threads {
		p := before[t.TID] // zero for a thread started in between
		if p.Comm != "" && p.Comm != t.Comm {
			p = ThreadTime{}
		}
		if d := sec(p.UTime+p.STime, t.UTime+t.STime); d > 0 {
			byName[t.Comm] += d
		}
	}
	for n, s := range byName {
		u.threads = append(u.threads, threadUse{n, s})
	}
	slices.SortFunc(u.threads, func(x, y threadUse) int {
		if x.secs != y.secs {
			if x.secs > y.secs {
				return -1
			}
			return 1
		}
		return strings.Compare(x.name, y.name)
	})
	return u
}

// top names the n busiest threads with their share of secs.
func (u cpuUse) top(n int, secs float64) string {
	var parts []string
	for _, t := range u.threads[:min(n, len(u.threads))] {
		parts = append(parts, fmt.Sprintf("%s %.2f", t.name, t.secs/secs))
	}
	return strings.Join(parts, ", ")
}
