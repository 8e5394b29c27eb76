package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeProc writes a procfs tree with two CPUs and the given threads (TID ->
// stat line) of process 7.
func fakeProc(t *testing.T, stat string, threads map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", stat)
	write("softirqs", "                    CPU0       CPU1\n          HI:          0          0\n      NET_TX:          5          6\n      NET_RX:        100        200\n")
	for tid, line := range threads {
		write("7/task/"+tid+"/stat", line)
	}
	return dir
}

// statLine is a thread's stat line with utime, stime and processor set.
func statLine(tid, comm, utime, stime, cpu string) string {
	f := make([]string, 50)
	for i := range f {
		f[i] = "0"
	}
	f[0], f[1], f[2] = tid, "("+comm+")", "S"
	f[13], f[14], f[38] = utime, stime, cpu
	return strings.Join(f, " ") + "\n"
}

func TestCPUSampleAndUse(t *testing.T) {
	stat0 := "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 10 0 20 100 0 1 5 0 0 0\ncpu1 0 0 0 300 0 0 0 0 0 0\nintr 1 2\n"
	stat1 := "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 30 0 60 110 0 1 105 0 0 0\ncpu1 0 0 10 390 0 0 0 0 0 0\nintr 1 2\n"
	a, err := ReadCPUSample(fakeProc(t, stat0, map[string]string{
		"8": statLine("8", "napi/eth0-1", "0", "50", "0"), "9": statLine("9", "medi (a) lb", "10", "10", "1")}))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.CPUs) != 2 || a.CPUs[0].SoftIRQ != 5 || a.CPUs[1].Idle != 300 || a.NetRX[1] != 200 || a.NetTX[0] != 5 {
		t.Fatalf("sample %+v", a)
	}
	if len(a.Threads) != 2 {
		t.Fatalf("threads %+v", a.Threads)
	}
	b, err := ReadCPUSample(fakeProc(t, stat1, map[string]string{
		"8": statLine("8", "napi/eth0-1", "0", "150", "0"), "9": statLine("9", "medi (a) lb", "60", "30", "1"),
		"10": statLine("10", "kworker/0:1", "0", "5", "0")}))
	if err != nil {
		t.Fatal(err)
	}
	u := use(a, b)
	// cpu0: user +20, sys +40, softirq +100; cpu1: sys +10 -> busy 170 ticks.
	if u.busy != 1.7 || u.user != 0.2 || u.sys != 0.5 || u.softirq != 1.0 || u.netRX != 0 {
		t.Errorf("use = %+v, want busy 1.7 user 0.2 sys 0.5 softirq 1.0", u)
	}
	if got := u.top(3, 1); got != "napi/eth0-1 1.00, medi (a) lb 0.70, kworker/0:1 0.05" {
		t.Errorf("top = %q", got)
	}
	if _, err := ReadCPUSample(fakeProc(t, "cpu 1 2\n", nil)); err == nil {
		t.Error("a stat without cpuN lines was accepted")
	}
	if _, err := parseThreadStat("12 (x) S 1 2"); err == nil {
		t.Error("a short stat line was accepted")
	}
}
