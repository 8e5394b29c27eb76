// Package l7bench compares medialb's layer-7 SNAT proxy with HAProxy in a namespace
// lab of its own, in the same run, on the same real servers.
//
// The lab (package lab, prefix tag "lb7") has one client namespace with a few source
// addresses, one load-balancer namespace and two real servers running vossim (HTTP on
// 8080) and an iperf3 server on a benchmark port (5201). Each proxy in turn holds the
// Harmonic_Management VIP 192.168.94.100 on ports 8080, 8443 and 5201 in the
// load-balancer namespace, with source-IP persistence toward both servers:
//
//   - medialb: bin/medialb run with a generated configuration (layer 7, TCP mode), which
//     brings the VIP up itself;
//   - haproxy: Debian's haproxy run directly (-f CONFIG -db, never as a service) with a
//     generated `mode tcp`, `balance source` configuration; the harness puts the VIP on
//     the load balancer's interface for it and takes it off afterwards;
//   - direct (reference, no proxy): the client talks to a real server's own address.
//
// For each proxy it measures, with the tools people use for this: bulk throughput of
// one and of many streams (iperf3 from the client through the VIP), the rate of short
// request/response connections (wrk with "Connection: close" against vossim's HTTP),
// the latency of a small request on a kept-alive connection (wrk --latency, one
// connection), and the proxy process's CPU time per GB relayed and per connection
// (utime+stime from /proc/PID/stat before and after each point). Proxies take turns
// within each repeat (the first one alternates), so drifting load on a shared machine
// hits both alike; the report gives the median of the repeats and every value.
//
// Every point is measured in several setups (Config.Setups): medialb with the guide's
// two VIPs (the layer-4 service makes it attach its XDP steering program to the
// interface the layer-7 traffic arrives on) or the layer-7 service alone, each with
// the proxies unpinned or pinned to one CPU from their start (see Setup).
//
// Everything runs in namespaces named with a unique prefix; no address or route is
// touched outside the lab, and Run deletes the lab even when it fails. It needs root
// and the ip, iperf3, wrk and haproxy commands.
package l7bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
	"github.com/medialb/medialb/lab/probe"
)

// The proxies Run knows.
const (
	Medialb = "medialb"
	HAProxy = "haproxy"
	Direct  = "direct"
	// MedialbAlt is a second medialb build or environment (Config.AltBinDir,
	// Config.AltEnv), for measuring a change against the current one in the same run.
	MedialbAlt = "medialb-alt"
)

// Scenarios: what medialb's configuration holds besides the layer-7 VIP.
const (
	// TwoVIP is the guide's deployment: the layer-7 service and the layer-4 service
	// Harmonic_Traffic (192.168.94.110, direct routing) on the same interface, so
	// medialb's XDP steering program is attached where the layer-7 traffic arrives.
	TwoVIP = "two-vip"
	// L7Only is the layer-7 service alone: no XDP program on the interface.
	L7Only = "l7-only"
	// TwoVIPGeneric is TwoVIP with node.xdp_mode: generic: a veth keeps its peer's
	// TSO (it turns it off for a native XDP program of any kind), at the price of a
	// slower layer-4 path.
	TwoVIPGeneric = "two-vip-generic"
)

// Setup is one configuration the proxies are measured in.
type Setup struct {
	Scenario string // TwoVIP or L7Only (HAProxy runs the layer-7 service alone in both)
	// Pinned runs each proxy on one CPU (Config.PinCPU) from its start, so Go sees one
	// CPU (GOMAXPROCS 1) and HAProxy runs one thread; otherwise nothing is pinned.
	Pinned bool
}

// Name is the setup's label in the report and the key prefix of Results.Values.
func (s Setup) Name() string {
	if s.Pinned {
		return s.Scenario + ", pinned"
	}
	return s.Scenario + ", unpinned"
}

// DefaultSetups are measured when Config.Setups is empty: the guide's two-VIP
// configuration first, then layer 7 alone, each unpinned and pinned.
var DefaultSetups = []Setup{{TwoVIP, false}, {TwoVIP, true}, {L7Only, false}, {L7Only, true}}

// Key is the Results.Values key of proxy measured in setup s.
func Key(s Setup, proxy string) string { return s.Name() + "/" + proxy }

// BenchPort is the lab port the iperf3 servers listen on, a port of the VIP in both
// proxies' configurations.
const BenchPort = 5201

// Config configures Run. Zero fields take the defaults in their comments.
type Config struct {
	// BinDir holds medialb and vossim (`make build` puts them in bin/). Required.
	BinDir string
	// HAProxy is the haproxy binary; default "haproxy" from PATH.
	HAProxy string
	// Proxies are measured in this order (the first alternates between repeats);
	// default medialb, haproxy, direct.
	Proxies []string
	// Duration of each point; default 3s.
	Duration time.Duration
	// Repeats of every point per proxy; default 3.
	Repeats int
	// Streams are the iperf3 parallel stream counts, client to server; default 1.
	Streams []int
	// Downloads are iperf3 -R stream counts (the servers send, like a client fetching
	// a large file: the servers' TSO segments reach the proxy); default 4.
	Downloads []int
	// Setups are measured in turn within each repeat; default DefaultSetups. The
	// proxy "direct" (no proxy) is measured in the first setup only.
	Setups []Setup
	// PinCPU is the CPU pinned setups run each proxy on; default the last one.
	PinCPU int
	// ProfileDir, when set, receives a `perf record -g` profile of each proxy process
	// during the connection-rate point of the first repeat of every setup.
	ProfileDir string
	// ProfileDownloads adds a system-wide profile (see startSystemProfile) of each
	// download point of the first repeat to ProfileDir.
	ProfileDownloads bool
	// RateConns is the number of concurrent wrk connections of the connection-rate
	// point; default 32.
	RateConns int
	// AltBinDir holds the medialb binary of the proxy "medialb-alt"; default BinDir.
	AltBinDir string
	// AltEnv are NAME=VALUE settings added to the environment of "medialb-alt" (for
	// example GODEBUG=...).
	AltEnv []string
	// Logger receives progress; default none.
	Logger zerolog.Logger
}

func (c Config) withDefaults() Config {
	if c.HAProxy == "" {
		c.HAProxy = "haproxy"
	}
	if len(c.Proxies) == 0 {
		c.Proxies = []string{Medialb, HAProxy, Direct}
	}
	if c.Duration <= 0 {
		c.Duration = 3 * time.Second
	}
	if c.Repeats <= 0 {
		c.Repeats = 3
	}
	if len(c.Streams) == 0 {
		c.Streams = []int{1}
	}
	if len(c.Downloads) == 0 {
		c.Downloads = []int{4}
	}
	if len(c.Setups) == 0 {
		c.Setups = DefaultSetups
	}
	if c.PinCPU <= 0 || c.PinCPU >= numCPU() {
		c.PinCPU = numCPU() - 1
	}
	if c.RateConns <= 0 {
		c.RateConns = 32
	}
	if c.AltBinDir == "" {
		c.AltBinDir = c.BinDir
	}
	return c
}

// Measure is one measurement of one point.
type Measure struct {
	Value float64 // in the point's unit
	// CPU is the proxy process's CPU time during the point (zero for direct).
	CPU time.Duration
	// Work is what the point moved: bytes (throughput) or connections (rate, latency).
	Work float64
	// Errors are wrk's socket errors and non-2xx answers, iperf3's error text.
	Errors string
}

// Point names a measurement: "stream1", "stream16", "rate", "latency-p50", ...
type Point = string

// Results are the figures of one campaign.
type Results struct {
	Config  Config
	Start   time.Time
	End     time.Duration
	Load    string // /proc/loadavg at the start
	Kernel  string
	HAProxy string // haproxy -v, first line
	// Values[Key(setup, proxy)][point] are the repeats, in order.
	Values map[string]map[Point][]Measure
}

// Run builds the lab, measures every proxy and deletes the lab.
func Run(ctx context.Context, cfg Config) (res *Results, err error) {
	cfg = cfg.withDefaults()
	if cfg.BinDir == "" {
		return nil, errors.New("run l7 benchmark: Config.BinDir must hold medialb and vossim (run make build)")
	}
	for _, tool := range []string{"ip", "iperf3", "wrk", cfg.HAProxy} {
		if slices.Contains(cfg.Proxies, HAProxy) || tool != cfg.HAProxy {
			if _, err := exec.LookPath(tool); err != nil {
				return nil, fmt.Errorf("run l7 benchmark: %s not found: %w (make deps-bench installs it)", tool, err)
			}
		}
	}
	res = &Results{Config: cfg, Start: time.Now().UTC(), Values: map[string]map[Point][]Measure{}}
	res.Load = readTrim("/proc/loadavg")
	res.Kernel = readTrim("/proc/sys/kernel/osrelease")
	if out, err := exec.Command(cfg.HAProxy, "-v").Output(); err == nil {
		res.HAProxy, _, _ = strings.Cut(string(out), "\n")
	}

	tmp, err := os.MkdirTemp("", "medialb-l7bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	l, err := lab.New(lab.Options{
		Prefix:  lab.Prefix("lb7"),
		Clients: 16,
		Servers: lab.DefaultServers(2),
		NoIPv6:  true,
		Logger:  cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	b := &bench{cfg: cfg, lab: l, tmp: tmp, log: cfg.Logger, res: res}
	if err := b.setup(); err != nil {
		return nil, err
	}
	defer b.teardown()

	for r := range cfg.Repeats {
		for i, setup := range cfg.Setups {
			order := slices.Clone(cfg.Proxies)
			if i > 0 {
				order = slices.DeleteFunc(order, func(p string) bool { return p == Direct })
			}
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, proxy := range order {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				if err := b.measure(ctx, setup, proxy); err != nil {
					return nil, fmt.Errorf("repeat %d, %s, %s: %w", r+1, setup.Name(), proxy, err)
				}
			}
		}
	}
	res.End = time.Since(res.Start).Round(time.Second)
	return res, nil
}

type bench struct {
	cfg    Config
	lab    *lab.Lab
	tmp    string
	log    zerolog.Logger
	res    *Results
	iperfs []*exec.Cmd
	vip    netip.Addr
}

var vip = netip.MustParseAddr("192.168.94.100")

// setup tunes the lab's namespaces for many short connections and starts vossim and
// the iperf3 servers.
func (b *bench) setup() error {
	b.vip = vip
	// Per-namespace sysctls: a wide ephemeral port range and TIME_WAIT reuse for the
	// connection-rate point (the client and the proxy open tens of thousands).
	// Net sysctls belong to the network namespace of the thread that opens them.
	for _, ns := range []string{b.lab.Client.NS, b.lab.LBs[0].NS} {
		err := lab.Do(ns, func() error {
			for _, kv := range [][2]string{
				{"/proc/sys/net/ipv4/ip_local_port_range", "1024 65535"},
				{"/proc/sys/net/ipv4/tcp_tw_reuse", "1"},
			} {
				if err := os.WriteFile(kv[0], []byte(kv[1]), 0o644); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("tune %s: %w", ns, err)
		}
	}
	if err := b.lab.StartVOS(filepath.Join(b.cfg.BinDir, "vossim")); err != nil {
		return err
	}
	for _, s := range b.lab.Servers {
		cmd := lab.Exec(s.NS, "iperf3", "-s", "-p", strconv.Itoa(BenchPort))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start iperf3 server in %s: %w", s.NS, err)
		}
		b.iperfs = append(b.iperfs, cmd)
	}
	// Wait until the iperf3 servers accept connections.
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range b.lab.Servers {
		for {
			c, err := b.lab.DialTCP(context.Background(), b.lab.Client.Addr4, netip.AddrPortFrom(s.Addr4, BenchPort))
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("iperf3 server on %s: %w", s.Name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func (b *bench) teardown() {
	for _, c := range b.iperfs {
		c.Process.Kill()
		c.Wait()
	}
}

// proxyProc is a running proxy under test.
type proxyProc struct {
	pid  int
	stop func() error
}

func (p *proxyProc) cpu() (time.Duration, error) {
	if p == nil || p.pid == 0 {
		return 0, nil
	}
	return processCPU(p.pid)
}

// measure starts proxy in setup, runs every point once and stops it.
func (b *bench) measure(ctx context.Context, setup Setup, proxy string) error {
	var p *proxyProc
	var err error
	target := b.vip
	cpu := -1
	if setup.Pinned {
		cpu = b.cfg.PinCPU
	}
	key := Key(setup, proxy)
	switch proxy {
	case Medialb:
		err = onCPU(cpu, func() (err error) { p, err = b.startMedialb(b.cfg.BinDir, nil, setup.Scenario); return err })
	case MedialbAlt:
		err = onCPU(cpu, func() (err error) { p, err = b.startMedialb(b.cfg.AltBinDir, b.cfg.AltEnv, setup.Scenario); return err })
	case HAProxy:
		err = onCPU(cpu, func() (err error) { p, err = b.startHAProxy(); return err })
	case Direct:
		// The server the client's primary address goes to is irrelevant: the same
		// server holds the same programs; HM1 it is.
		target = b.lab.Servers[0].Addr4
	default:
		return fmt.Errorf("unknown proxy %q (want medialb, medialb-alt, haproxy or direct)", proxy)
	}
	if err != nil {
		return err
	}
	if p != nil {
		defer func() {
			if serr := p.stop(); serr != nil && err == nil {
				err = serr
			}
		}()
		if err := b.waitServing(ctx); err != nil {
			return err
		}
		if cpu >= 0 {
			if err := checkPinned(p.pid, cpu); err != nil {
				return err
			}
		}
	}
	for _, n := range b.cfg.Streams {
		m, err := b.iperf(ctx, p, target, n, false)
		if err != nil {
			return err
		}
		b.add(key, fmt.Sprintf("stream%d", n), m)
	}
	for _, n := range b.cfg.Downloads {
		point := fmt.Sprintf("download%d", n)
		var prof *profiler
		if p != nil && b.cfg.ProfileDownloads && len(b.res.Values[key][point]) == 0 {
			prof = startSystemProfile(b.cfg.ProfileDir, p.pid, b.cfg.Duration, setup, proxy, point)
		}
		m, err := b.iperf(ctx, p, target, n, true)
		prof.wait()
		if err != nil {
			return err
		}
		b.add(key, point, m)
	}
	url := "http://" + netip.AddrPortFrom(target, 8080).String() + "/"
	var prof *profiler
	if p != nil && len(b.res.Values[key]["rate"]) == 0 {
		prof = startProfile(b.cfg.ProfileDir, p.pid, b.cfg.Duration, setup, proxy, "rate")
	}
	rate, err := b.wrk(ctx, p, url, 2, b.cfg.RateConns, true)
	prof.wait()
	if err != nil {
		return err
	}
	b.add(key, "rate", rate.rate)
	b.add(key, "rate-p99", rate.p99)
	lat, err := b.wrk(ctx, p, url, 1, 1, false)
	if err != nil {
		return err
	}
	b.add(key, "latency-p50", lat.p50)
	b.add(key, "latency-p99", lat.p99)
	b.log.Info().Str("proxy", key).Msg("point set measured")
	return nil
}

func (b *bench) add(proxy string, point Point, m Measure) {
	if b.res.Values[proxy] == nil {
		b.res.Values[proxy] = map[Point][]Measure{}
	}
	b.res.Values[proxy][point] = append(b.res.Values[proxy][point], m)
	b.log.Info().Str("proxy", proxy).Str("point", point).Float64("value", m.Value).
		Dur("cpu", m.CPU).Float64("work", m.Work).Str("errors", m.Errors).Msg("measured")
}

// waitServing waits until HTTP through the VIP answers.
func (b *bench) waitServing(ctx context.Context) error {
	t := probe.Target{Proto: "http", Addr: netip.AddrPortFrom(b.vip, 8080)}
	var err error
	for range 100 {
		if _, err = probe.One(ctx, b.lab, b.lab.Client.Addr4, t); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no answer through %s: %w", t, err)
}

// Generated configurations. Both proxies: the same VIP and ports, source-IP
// persistence, the same two servers on the port the client connected to, the kernel's
// choice of source address toward them (the load balancer's own).
const medialbConfig = `node:
  name: lb7
  interface: {{.Iface}}
  state_dir: {{.Dir}}/state
{{- if .XDPMode}}
  xdp_mode: {{.XDPMode}}
{{- end}}
api:
  listen: {{.LB}}:9443
  users:
    - name: loadbalancer
      password_hash: "$2a$10$u0cqovdTwUFe8GZsu.3X/OU4fJQhpx.weaiGm3.Z4VcxMEaEsc/Pm"
virtual_services:
  - name: Harmonic_Management
    address: {{.VIP}}
    ports: "8080,8443,{{.Bench}}"
    layer: 7
    protocol: tcp
    persistence: { mode: source-ip, timeout: 30m }
    health_check: { type: tcp-connect, port: 8080, interval: 5s, timeout: 2s }
    real_servers:
{{- range .Servers}}
      - { name: {{.Name}}, address: {{.Addr4}} }
{{- end}}
{{- if .L4}}
  - name: Harmonic_Traffic
    address: {{.L4}}
    ports: "1935,554,50000-65535"
    layer: 4
    forwarding: direct-routing
    protocol: tcp+udp
    persistence: { mode: source-ip, timeout: 300s }
    health_check: { type: tcp-connect, port: 8080, interval: 5s, timeout: 2s }
    real_servers:
{{- range .Servers}}
      - { name: T{{.Name}}, address: {{.Addr4}} }
{{- end}}
{{- end}}
`

const haproxyConfig = `# generated by medialb-l7bench: HAProxy in the lab's load-balancer namespace
global
    maxconn 8000
    # no log, no stats socket, no chroot, no user switch: a foreground benchmark run

defaults
    mode tcp
    timeout connect 4s
    timeout client 43m
    timeout server 43m

listen Harmonic_Management
    bind {{.VIP}}:8080
    bind {{.VIP}}:8443
    bind {{.VIP}}:{{.Bench}}
    balance source
{{- range .Servers}}
    server {{.Name}} {{.Addr4}}
{{- end}}
`

type tmplVars struct {
	Iface, Dir, LB string
	VIP            netip.Addr
	L4             string // the layer-4 VIP of the two-VIP scenarios, else empty
	XDPMode        string // node.xdp_mode, empty for the default
	Bench          int
	Servers        []lab.Node
}

// l4VIP is the layer-4 VIP of the two-VIP scenario (Harmonic_Traffic, on the real
// servers' lo like every lab VIP).
var l4VIP = netip.MustParseAddr("192.168.94.110")

func (b *bench) render(name, tmpl string, scenario string) (string, error) {
	l4, mode := "", ""
	switch scenario {
	case TwoVIP:
		l4 = l4VIP.String()
	case TwoVIPGeneric:
		l4, mode = l4VIP.String(), "generic"
	}
	lb := b.lab.LBs[0]
	var buf bytes.Buffer
	err := template.Must(template.New(name).Parse(tmpl)).Execute(&buf, tmplVars{
		Iface: lb.Link, Dir: b.tmp, LB: lb.Addr4.String(), VIP: b.vip, L4: l4, XDPMode: mode, Bench: BenchPort, Servers: b.lab.Servers,
	})
	if err != nil {
		return "", err
	}
	path := filepath.Join(b.tmp, name)
	return path, os.WriteFile(path, buf.Bytes(), 0o600)
}

// startMedialb runs dir/medialb with env added to its environment (lbproc.Start
// passes this process's environment on, so env is set around the start only).
func (b *bench) startMedialb(dir string, env []string, scenario string) (*proxyProc, error) {
	cfg, err := b.render("medialb.yaml", medialbConfig, scenario)
	if err != nil {
		return nil, err
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		old, had := os.LookupEnv(k)
		os.Setenv(k, v)
		if had {
			defer os.Setenv(k, old)
		} else {
			defer os.Unsetenv(k)
		}
	}
	p, err := lbproc.Start(b.lab, b.lab.LBs[0], filepath.Join(dir, "medialb"), cfg, filepath.Join(b.tmp, "medialb.log"), nil)
	if err != nil {
		return nil, err
	}
	if err := p.WaitStarted(context.Background(), 20*time.Second); err != nil {
		p.Stop(5 * time.Second)
		return nil, fmt.Errorf("%w\n%s", err, p.Log())
	}
	return &proxyProc{pid: p.Cmd.Process.Pid, stop: func() error { return p.Stop(15 * time.Second) }}, nil
}

func (b *bench) startHAProxy() (*proxyProc, error) {
	cfg, err := b.render("haproxy.cfg", haproxyConfig, L7Only)
	if err != nil {
		return nil, err
	}
	lb := b.lab.LBs[0]
	vipNet := b.vip.String() + "/32"
	if out, err := exec.Command("ip", "-n", lb.NS, "addr", "add", vipNet, "dev", lb.Link).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("add VIP for haproxy: %w: %s", err, out)
	}
	delVIP := func() { exec.Command("ip", "-n", lb.NS, "addr", "del", vipNet, "dev", lb.Link).Run() }
	// Tell the client at once that the VIP is here (as medialb's announcement does).
	lab.Exec(lb.NS, "arping", "-U", "-c", "1", "-I", lb.Link, b.vip.String()).Run()
	var out bytes.Buffer
	cmd := lab.Exec(lb.NS, b.cfg.HAProxy, "-f", cfg, "-db")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		delVIP()
		return nil, fmt.Errorf("start haproxy: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() error {
		defer delVIP()
		cmd.Process.Signal(syscall.SIGTERM) // hard stop: close everything, exit
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		return nil
	}
	// haproxy exits at once on a configuration or bind error.
	select {
	case err := <-done:
		delVIP()
		return nil, fmt.Errorf("haproxy exited at start: %v\n%s", err, out.String())
	case <-time.After(300 * time.Millisecond):
	}
	return &proxyProc{pid: cmd.Process.Pid, stop: stop}, nil
}

// iperf runs iperf3 with n parallel streams from the client's primary address to
// dst:BenchPort (with reverse, the server sends) and returns the received
// throughput in Gbit/s.
func (b *bench) iperf(ctx context.Context, p *proxyProc, dst netip.Addr, n int, reverse bool) (Measure, error) {
	secs := strconv.FormatFloat(b.cfg.Duration.Seconds(), 'f', -1, 64)
	args := []string{"-c", dst.String(), "-p", strconv.Itoa(BenchPort),
		"-B", b.lab.Client.Addr4.String(), "-t", secs, "-P", strconv.Itoa(n), "-J"}
	if reverse {
		args = append(args, "-R")
	}
	cmd := lab.Exec(b.lab.Client.NS, "iperf3", args...)
	cpu0, err := p.cpu()
	if err != nil {
		return Measure{}, err
	}
	out, err := runCtx(ctx, cmd, b.cfg.Duration+20*time.Second)
	cpu1, cerr := p.cpu()
	var r struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		return Measure{}, fmt.Errorf("iperf3 -P %d to %s: %v %v: %s", n, dst, err, jerr, tail(out))
	}
	if err != nil || r.Error != "" || r.End.SumReceived.Bytes == 0 {
		return Measure{}, fmt.Errorf("iperf3 -P %d to %s: %v %s", n, dst, err, r.Error)
	}
	if cerr != nil {
		return Measure{}, cerr
	}
	return Measure{Value: r.End.SumReceived.BitsPerSecond / 1e9, CPU: cpu1 - cpu0, Work: r.End.SumReceived.Bytes}, nil
}

type wrkResult struct{ rate, p50, p99 Measure }

// wrk runs wrk against url; with closeConns every request is a new connection.
func (b *bench) wrk(ctx context.Context, p *proxyProc, url string, threads, conns int, closeConns bool) (wrkResult, error) {
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", strconv.Itoa(int(b.cfg.Duration.Round(time.Second)/time.Second)) + "s", "--latency"}
	if closeConns {
		args = append(args, "-H", "Connection: close")
	}
	args = append(args, url)
	cpu0, err := p.cpu()
	if err != nil {
		return wrkResult{}, err
	}
	out, err := runCtx(ctx, lab.Exec(b.lab.Client.NS, "wrk", args...), b.cfg.Duration+20*time.Second)
	cpu1, cerr := p.cpu()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %v: %w: %s", args, err, tail(out))
	}
	if cerr != nil {
		return wrkResult{}, cerr
	}
	w, err := parseWrk(string(out))
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %v: %w: %s", args, err, tail(out))
	}
	cpu := cpu1 - cpu0
	return wrkResult{
		rate: Measure{Value: w.rps, CPU: cpu, Work: w.requests, Errors: w.errors},
		p50:  Measure{Value: w.p50.Seconds() * 1e3, Work: w.requests, Errors: w.errors},
		p99:  Measure{Value: w.p99.Seconds() * 1e3, Work: w.requests, Errors: w.errors},
	}, nil
}

type wrkOut struct {
	rps, requests float64
	p50, p99      time.Duration
	errors        string
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reRequests = regexp.MustCompile(`(\d+) requests in`)
	reP50      = regexp.MustCompile(`(?m)^\s+50%\s+([0-9.]+[a-z]+)`)
	reP99      = regexp.MustCompile(`(?m)^\s+99%\s+([0-9.]+[a-z]+)`)
	reErrs     = regexp.MustCompile(`(?m)^\s*(Socket errors:.*|Non-2xx or 3xx responses:.*)$`)
)

// parseWrk reads wrk's text report.
func parseWrk(s string) (wrkOut, error) {
	var w wrkOut
	m := reRPS.FindStringSubmatch(s)
	r := reRequests.FindStringSubmatch(s)
	m50 := reP50.FindStringSubmatch(s)
	m99 := reP99.FindStringSubmatch(s)
	if m == nil || r == nil || m50 == nil || m99 == nil {
		return w, errors.New("no Requests/sec or latency distribution in the report")
	}
	w.rps, _ = strconv.ParseFloat(m[1], 64)
	w.requests, _ = strconv.ParseFloat(r[1], 64)
	var err error
	if w.p50, err = time.ParseDuration(m50[1]); err != nil {
		return w, err
	}
	if w.p99, err = time.ParseDuration(m99[1]); err != nil {
		return w, err
	}
	var errs []string
	for _, e := range reErrs.FindAllStringSubmatch(s, -1) {
		errs = append(errs, strings.TrimSpace(e[1]))
	}
	w.errors = strings.Join(errs, "; ")
	return w, nil
}

// processCPU returns utime+stime of process pid (all its threads) from /proc/PID/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; fields after its ')' are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("read CPU time of process %d: malformed stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("read CPU time of process %d: short stat", pid)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read CPU time of process %d: bad utime/stime", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

func runCtx(ctx context.Context, cmd *exec.Cmd, timeout time.Duration) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-ctx.Done():
	case <-time.After(timeout):
	}
	cmd.Process.Kill()
	<-done
	return out.Bytes(), fmt.Errorf("%s: stopped after %s or cancelled", cmd.Path, timeout)
}

func tail(b []byte) string {
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return string(b)
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}
