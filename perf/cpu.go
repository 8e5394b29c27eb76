package perf

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/medialb/medialb/afxdp"
)

// taskFile returns the path of a per-thread /proc file of thread tid. /proc/TID/stat of a
// thread that does not lead its process sums the whole process; /proc/TID/task/TID/ is
// the thread's own.
func taskFile(tid int, name string) string {
	t := strconv.Itoa(tid)
	return "/proc/" + t + "/task/" + t + "/" + name
}

// pinThread pins thread tid to cpu with the taskset command (sched_setaffinity on a
// thread id; the harness stays free of raw syscalls).
func pinThread(tid, cpu int) error {
	return runCmd("taskset", "-pc", strconv.Itoa(cpu), strconv.Itoa(tid))
}

// threadRuntime returns the CPU time thread tid has run, from the scheduler's
// /proc/TID/task/TID/schedstat (nanoseconds).
func threadRuntime(tid int) (time.Duration, error) {
	b, err := os.ReadFile(taskFile(tid, "schedstat"))
	if err != nil {
		return 0, fmt.Errorf("read thread %d CPU time: %w", tid, err)
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0, fmt.Errorf("read thread %d CPU time: empty schedstat", tid)
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read thread %d CPU time: %w", tid, err)
	}
	return time.Duration(ns), nil
}

// napiThreads returns the thread ids of the threaded-NAPI kernel threads of ifname
// ("napi/IFNAME-ID", cut to 15 characters), in ascending NAPI id order, which is RX
// queue order for veth.
func napiThreads(ifname string) ([]int, error) {
	if len("napi/"+ifname+"-") > 15 {
		return nil, fmt.Errorf("find NAPI threads of %s: name too long to match", ifname)
	}
	return afxdp.NAPIThreads(ifname), nil
}

// threadNAPI switches ifname in ns to threaded NAPI (it must have NAPI instances, which a
// veth has while an XDP program is attached) and pins its threads, queue i on cpus[i %
// len(cpus)]. It returns the threads' ids.
func threadNAPI(ns, ifname string, cpus []int) ([]int, error) {
	if err := nsCmd(ns, "sh", "-c", "echo 1 > /sys/class/net/"+ifname+"/threaded"); err != nil {
		return nil, fmt.Errorf("switch %s to threaded NAPI: %w", ifname, err)
	}
	var tids []int
	var err error
	for range 50 {
		if tids, err = napiThreads(ifname); err != nil || len(tids) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	if len(tids) == 0 {
		return nil, fmt.Errorf("switch %s to threaded NAPI: no napi/%s-* thread appeared", ifname, ifname)
	}
	for i, tid := range tids {
		if err := pinThread(tid, cpus[i%len(cpus)]); err != nil {
			return nil, err
		}
	}
	return tids, nil
}

// cpuTimes returns busy and total jiffies of cpu from /proc/stat.
func cpuTimes(cpu int) (busy, total uint64, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	want := "cpu" + strconv.Itoa(cpu) + " "
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, want) {
			continue
		}
		for i, s := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseUint(s, 10, 64)
			total += v
			if i != 3 && i != 4 && i != 7 { // idle, iowait, steal
				busy += v
			}
		}
		return busy, total, nil
	}
	return 0, 0, fmt.Errorf("read /proc/stat: no line for cpu%d", cpu)
}

// clockTick is USER_HZ, the unit of /proc/.../stat times (100 on Linux everywhere).
const clockTick = 10 * time.Millisecond

// threadUserSys returns the user and system CPU time of thread tid from its stat file
// (a resolution of clockTick).
func threadUserSys(tid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(taskFile(tid, "stat"))
	if err != nil {
		return 0, 0, fmt.Errorf("read thread %d times: %w", tid, err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("read thread %d times: malformed stat", tid)
	}
	f := strings.Fields(s[i+1:])
	// After the command: state(3) ... utime(14) stime(15), counted from 1 with pid(1), comm(2).
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("read thread %d times: short stat", tid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	k, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("read thread %d times: malformed stat", tid)
	}
	return time.Duration(u) * clockTick, time.Duration(k) * clockTick, nil
}
