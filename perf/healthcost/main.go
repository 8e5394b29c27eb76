// Command healthcost measures what health checks cost the load balancer's process: it runs
// a health.Monitor (the daemon's checker, unchanged) with many targets against as many
// simulated VOS servers, and reports the CPU time the checking process spends per second
// of wall time.
//
// The servers are lab/vos servers (HTTP and HTTPS listeners with /admin/status answering
// "Healthy"), one per target, all on 127.0.0.1 with their own ports, in a child process
// (this program started again with HEALTHCOST_SERVE set), so that their CPU is not
// counted as the checker's; the child's CPU over the same window is reported separately.
// The checker's CPU is the whole process's user+system time from getrusage(RUSAGE_SELF)
// (garbage collector and scheduler included), read at the start and at the end of the
// measured window, after a warm-up that lets every target finish its first checks.
//
// Usage:
//
//	go run ./perf/healthcost [-targets 1000] [-interval 1s] [-duration 10s] [-types https-get,http-get,tcp-connect] [-spread] [-cpuprofile FILE]
//
// Loopback in the root namespace only: nothing is sent off the machine.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/health"
	"github.com/medialb/medialb/lab/vos"
	"github.com/medialb/medialb/tables"
)

// serveEnv, when set to a number, makes the program serve that many simulated servers
// instead of measuring (the child process).
const serveEnv = "HEALTHCOST_SERVE"

func main() {
	if n := os.Getenv(serveEnv); n != "" {
		if err := serve(n, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "healthcost servers:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "healthcost:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("healthcost", flag.ContinueOnError)
	targets := fs.Int("targets", 1000, "real servers to check (one simulated server each)")
	interval := fs.Duration("interval", time.Second, "health check interval")
	timeout := fs.Duration("timeout", 0, "health check timeout (default as in the configuration: 3s, or half an interval of 3s or less)")
	duration := fs.Duration("duration", 10*time.Second, "measured window per check type")
	types := fs.String("types", "https-get", "comma-separated check types to measure, one after the other")
	spread := fs.Bool("spread", false, "add the targets over one interval instead of all at once (the daemon adds them at once)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the checker (whole run) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("create CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := startServers(ctx, *targets)
	if err != nil {
		return err
	}
	defer srv.close()
	fmt.Printf("healthcost: %d targets (simulated VOS servers in child process %d, 127.0.0.1), interval %s, jitter %s, window %s; %s, GOMAXPROCS %d, %d CPUs\n",
		*targets, srv.cmd.Process.Pid, *interval, *interval/10, *duration, runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU())
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average at start: %s", load)
	}
	fmt.Println("| check | targets | checks/s | failed | checker CPU s/s | CPU per check | servers' CPU s/s | check p50 / p99 | checker RSS |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, typ := range strings.Split(*types, ",") {
		r, err := measure(ctx, srv, Options{Type: typ, Interval: *interval, Timeout: *timeout, Duration: *duration, Spread: *spread})
		if err != nil {
			return err
		}
		fmt.Println(r.Row())
	}
	return nil
}

// Options says what to measure.
type Options struct {
	Type     string        // health check type
	Interval time.Duration // check interval; jitter is a tenth of it, as in the configuration
	Timeout  time.Duration // check timeout; default as in the configuration: 3s, or half an interval of 3s or less
	Duration time.Duration // measured window
	Warmup   time.Duration // before the window; default two intervals
	// Spread adds the targets to the Monitor in 20 steps over one interval instead of
	// all at once (as the daemon does at start), so that their checks do not start in
	// step. It shows what spreading the first checks over the interval would change.
	Spread bool
}

// Result is one measurement.
type Result struct {
	Type             string
	Spread           bool
	Targets          int
	Window           time.Duration
	Checks, Failed   int64
	SelfCPU          time.Duration // this process, over the window
	ServersCPU       time.Duration // the child process, over the window
	P50, P99         time.Duration // check durations in the window
	RSS              int64         // this process's resident set at the end, bytes
	FirstFailReasons []string
}

// Row renders r as a line of the Markdown table run prints.
func (r Result) Row() string {
	sec := r.Window.Seconds()
	perCheck := time.Duration(0)
	if r.Checks > 0 {
		perCheck = r.SelfCPU / time.Duration(r.Checks)
	}
	typ := r.Type
	if r.Spread {
		typ += " (spread)"
	}
	return fmt.Sprintf("| %s | %d | %.0f | %d | %.3f | %s | %.3f | %s / %s | %.0f MB |",
		typ, r.Targets, float64(r.Checks)/sec, r.Failed, r.SelfCPU.Seconds()/sec,
		perCheck.Round(time.Microsecond), r.ServersCPU.Seconds()/sec,
		r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), float64(r.RSS)/1e6)
}

// measure checks every server of srv with a Monitor for o.Warmup+o.Duration and measures
// the window.
func measure(ctx context.Context, srv *servers, o Options) (Result, error) {
	if o.Warmup <= 0 {
		o.Warmup = 2 * o.Interval
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
		if o.Interval <= o.Timeout {
			o.Timeout = o.Interval / 2
		}
	}
	spec := health.Spec{
		Type: o.Type, Path: "/admin/status", Expect: "Healthy",
		Interval: o.Interval, Timeout: o.Timeout, Jitter: o.Interval / 10,
		Rise: 2, Fall: 3,
	}
	addrs := srv.https
	if o.Type != health.TypeHTTPSGet {
		addrs = srv.http
	}
	ts := make([]health.Target, len(addrs))
	for i, a := range addrs {
		ts[i] = health.Target{Key: tables.Key{Service: "svc", Server: "rs" + strconv.Itoa(i)}, Addr: a, Spec: spec}
	}
	var (
		counting           atomic.Bool
		checks, failed     atomic.Int64
		mu                 sync.Mutex
		durations, reasons = []time.Duration{}, []string{}
	)
	mon := health.NewMonitor(zerolog.Nop(), nil)
	mon.OnResult(func(_ tables.Key, r health.Result) {
		if !counting.Load() {
			return
		}
		checks.Add(1)
		mu.Lock()
		durations = append(durations, r.Duration)
		if !r.OK {
			failed.Add(1)
			if len(reasons) < 3 {
				reasons = append(reasons, r.Reason)
			}
		}
		mu.Unlock()
	})
	defer mon.Close()
	if o.Spread {
		const steps = 20
		for i := 1; i <= steps; i++ {
			mon.Set(ts[:len(ts)*i/steps])
			time.Sleep(o.Interval / steps)
		}
	} else {
		mon.Set(ts)
	}

	select {
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-time.After(o.Warmup):
	}
	runtime.GC()
	self0 := selfCPU()
	child0, err := srv.cpu()
	if err != nil {
		return Result{}, err
	}
	t0 := time.Now()
	counting.Store(true)
	select {
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-time.After(o.Duration):
	}
	counting.Store(false)
	self1 := selfCPU()
	wall := time.Since(t0)
	child1, err := srv.cpu()
	if err != nil {
		return Result{}, err
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(durations)
	r := Result{
		Type: o.Type, Spread: o.Spread, Targets: len(ts), Window: wall,
		Checks: checks.Load(), Failed: failed.Load(),
		SelfCPU: self1 - self0, ServersCPU: child1 - child0,
		P50: quantile(durations, 0.5), P99: quantile(durations, 0.99),
		RSS: selfRSS(), FirstFailReasons: reasons,
	}
	if r.Failed > 0 {
		fmt.Fprintf(os.Stderr, "healthcost: %s: %d of %d checks failed, e.g. %q\n", o.Type, r.Failed, r.Checks, reasons)
	}
	return r, nil
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// selfCPU returns this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// selfRSS returns this process's resident set size from /proc/self/status, 0 if unknown.
func selfRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// servers is the child process that runs the simulated servers.
type servers struct {
	cmd         *exec.Cmd
	in          io.WriteCloser
	out         *bufio.Reader
	mu          sync.Mutex
	http, https []netip.AddrPort
}

// startServers starts this program again with serveEnv=n and reads the servers'
// addresses from it.
func startServers(ctx context.Context, n int) (*servers, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable to start the servers: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), serveEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the servers' process: %w", err)
	}
	s := &servers{cmd: cmd, in: in, out: bufio.NewReader(out)}
	for {
		line, err := s.out.ReadString('\n')
		if err != nil {
			s.close()
			return nil, fmt.Errorf("read the servers' addresses: %w", err)
		}
		f := strings.Fields(line)
		if len(f) == 1 && f[0] == "ready" {
			break
		}
		if len(f) != 3 || f[0] != "server" {
			s.close()
			return nil, fmt.Errorf("servers' process said %q, want \"server HTTP HTTPS\"", line)
		}
		h, err1 := netip.ParseAddrPort(f[1])
		hs, err2 := netip.ParseAddrPort(f[2])
		if err := errors.Join(err1, err2); err != nil {
			s.close()
			return nil, fmt.Errorf("servers' process: %w", err)
		}
		s.http, s.https = append(s.http, h), append(s.https, hs)
	}
	if len(s.https) != n {
		s.close()
		return nil, fmt.Errorf("servers' process started %d servers, want %d", len(s.https), n)
	}
	return s, nil
}

// cpu asks the child for its user+system CPU time so far.
func (s *servers) cpu() (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := io.WriteString(s.in, "usage\n"); err != nil {
		return 0, fmt.Errorf("ask the servers' process for its CPU time: %w", err)
	}
	line, err := s.out.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read the servers' process's CPU time: %w", err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "usage")), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("servers' process said %q, want \"usage NANOSECONDS\"", line)
	}
	return time.Duration(ns), nil
}

// close ends the child (closing its stdin tells it to stop) and waits for it.
func (s *servers) close() {
	s.in.Close()
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }() //nolint:errcheck // it is being stopped
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// serve is the child: it starts n simulated servers on 127.0.0.1, prints
// "server HTTP HTTPS" for each and "ready", answers "usage" lines with its CPU time in
// nanoseconds, and stops when its input ends.
func serve(count string, in io.Reader, out io.Writer) error {
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 {
		return fmt.Errorf("%s=%q: want a positive number", serveEnv, count)
	}
	var all []*vos.Server
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range all {
			s.Shutdown(ctx) //nolint:errcheck // exiting
		}
	}()
	w := bufio.NewWriter(out)
	for i := range n {
		s, err := vos.Start(vos.Config{Name: "rs" + strconv.Itoa(i), HTTP: "127.0.0.1:0", HTTPS: "127.0.0.1:0", Logger: zerolog.Nop()})
		if err != nil {
			return err
		}
		all = append(all, s)
		fmt.Fprintf(w, "server %s %s\n", s.HTTPAddr(), s.HTTPSAddr())
	}
	fmt.Fprintln(w, "ready")
	if err := w.Flush(); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if sc.Text() == "usage" {
			fmt.Fprintf(out, "usage %d\n", selfCPU().Nanoseconds())
		}
	}
	return nil
}
