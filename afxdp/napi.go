package afxdp

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// NAPIPriority is the SCHED_FIFO priority PrioritizeNAPI gives NAPI threads: the
// lowest real-time one, enough to run before every ordinary thread.
const NAPIPriority = 1

// PrioritizeNAPI switches ifname (in the caller's network namespace) to threaded NAPI
// and gives its NAPI threads SCHED_FIFO priority NAPIPriority, so that the kernel's
// receive path, the XDP program with its fast path and XDP_PASS included, always
// runs before user space on a saturated core: an overload then drops new flows at
// the AF_XDP socket's rings, not established clients and the node's own traffic
// (health-check replies, ARP/ND, VRRP, the API) in the interface's receive ring
// before XDP. Measured in BENCHMARKS.md (the flood section). Threaded NAPI needs
// the XDP program attached in native mode. It returns the number of threads and a
// function that puts the interface's NAPI mode back as it found it.
func PrioritizeNAPI(ifname string) (threads int, undo func() error, err error) {
	path := filepath.Join("/sys/class/net", ifname, "threaded")
	old, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, fmt.Errorf("read %s: %w (kernel without threaded NAPI?)", path, err)
	}
	undo = func() error { return nil }
	if strings.TrimSpace(string(old)) != "1" {
		if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
			return 0, nil, fmt.Errorf("switch %s to threaded NAPI: %w", ifname, err)
		}
		undo = func() error {
			if err := os.WriteFile(path, old, 0o644); err != nil {
				if errors.Is(err, unix.EOPNOTSUPP) {
					// veth's NAPI instances go with its native XDP program: once that
					// is gone (detached from outside, say), there is no threaded
					// NAPI left to put back.
					return nil
				}
				return fmt.Errorf("put %s back to NAPI mode %q: %w", ifname, strings.TrimSpace(string(old)), err)
			}
			return nil
		}
	}
	var tids []int
	for range 50 { // the threads appear asynchronously
		if tids = napiThreads(ifname); len(tids) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(tids) == 0 {
		return 0, undo, errors.Join(fmt.Errorf("prioritize NAPI of %s: no napi/%s-* thread appeared", ifname, ifname), undo())
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: NAPIPriority}
	for _, tid := range tids {
		if err := unix.SchedSetAttr(tid, &attr, 0); err != nil {
			return 0, undo, errors.Join(fmt.Errorf("give NAPI thread %d of %s real-time priority: %w (CAP_SYS_NICE?)", tid, ifname, err), undo())
		}
	}
	return len(tids), undo, nil
}

// napiThreads returns the thread ids of ifname's NAPI threads, "napi/IFNAME-ID", in
// ascending NAPI id order (RX queue order for veth). A task name is cut to 15
// characters: with a long interface name only the cut prefix is compared, and the
// threads come in thread id order.
func napiThreads(ifname string) []int {
	want := "napi/" + ifname + "-"
	if len(want) > 15 {
		want = want[:15]
	}
	paths, _ := filepath.Glob("/proc/[0-9]*/comm")
	type th struct{ id, tid int }
	var found []th
	for _, p := range paths {
		b, err := os.ReadFile(p)
		comm := strings.TrimSpace(string(b))
		if err != nil || !strings.HasPrefix(comm, want) {
			continue
		}
		tid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		id, _ := strconv.Atoi(strings.TrimPrefix(comm, want))
		found = append(found, th{id, tid})
	}
	slices.SortFunc(found, func(a, b th) int { return cmp.Or(cmp.Compare(a.id, b.id), cmp.Compare(a.tid, b.tid)) })
	tids := make([]int, len(found))
	for i, f := range found {
		tids[i] = f.tid
	}
	return tids
}

// SchedPolicy returns the scheduling policy of thread tid (unix.SCHED_*), for tests
// and diagnostics.
func SchedPolicy(tid int) (int, error) {
	a, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return 0, fmt.Errorf("read scheduling policy of thread %d: %w", tid, err)
	}
	return int(a.Policy), nil
}

// NAPIThreads returns the thread ids of ifname's NAPI threads (see PrioritizeNAPI).
func NAPIThreads(ifname string) []int { return napiThreads(ifname) }
