package ha

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/internal/atomicfile"
)

// Instance is the name of the VRRP instance in the keepalived configuration and
// in its notify FIFO lines.
const Instance = "medialb"

// KeepalivedSettings is what the keepalived configuration is made of.
type KeepalivedSettings struct {
	Node      string        // node.name: keepalived's router_id
	Interface string        // node.interface: where the VIPs go
	Peer      netip.Addr    // ha.peer: the only unicast peer, the only source of adverts taken
	Local     netip.Addr    // this node's own address: the adverts' source (unicast_src_ip); zero: the kernel's choice
	Priority  uint8         // ha.priority
	RouterID  uint8         // ha.router_id
	Advert    time.Duration // ha.advert_interval
	Preempt   bool          // ha.preempt
	VIPs      []netip.Addr  // every virtual service's address, once
	FIFO      string        // notify_fifo path
	Health    string        // track_file path: "0" healthy, anything else a fault
}

// RenderKeepalived returns the keepalived.conf for s: one VRRPv3 instance that
// starts as BACKUP (the higher priority becomes master after the master-down
// interval), unicast to the peer, with the VIPs of the peer's address family
// advertised and the others carried as virtual_ipaddress_excluded (VRRP
// advertises one family per instance); IPv6 VIPs are added without duplicate
// address detection and deprecated, as medialb adds them itself without HA
// (see netif). The track file turns the instance to FAULT, releasing the VIPs,
// when medialb writes a non-zero value into it.
//
// Adverts are taken from the peer only: keepalived 2.2.7 offers, for unicast
// VRRP, check_unicast_src (an advert whose source is not a unicast_peer is
// dropped) and a TTL range per peer (min_ttl/max_ttl, which also turn the
// source check on); we ask for TTL 255, what VRRP sends, so an advert that
// crossed a router is dropped too (the peer is on node.interface's link).
// VRRPv3 has no authentication (keepalived's authentication block is VRRPv2
// only, 8 bytes of clear text); vrrp_strict forbids unicast. unicast_src_ip
// makes our own adverts leave from this node's address, never a VIP.
func RenderKeepalived(s KeepalivedSettings) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Written by medialb; do not edit (it is rewritten at every start and reload).")
	w("global_defs {")
	w("    router_id %s", quote(s.Node))
	w("    vrrp_version 3")
	w("    notify_fifo %s", quote(s.FIFO))
	w("    vrrp_garp_master_refresh 60")
	w("}")
	w("track_file medialb_health {")
	w("    file %s", quote(s.Health))
	w("    weight 0")
	w("}")
	w("vrrp_instance %s {", Instance)
	w("    state BACKUP")
	w("    interface %s", s.Interface)
	w("    virtual_router_id %d", s.RouterID)
	w("    priority %d", s.Priority)
	w("    advert_int %s", advertSeconds(s.Advert))
	if !s.Preempt {
		w("    nopreempt")
	}
	if s.Local.IsValid() {
		w("    unicast_src_ip %s", s.Local)
	}
	w("    check_unicast_src")
	w("    unicast_peer {")
	w("        %s min_ttl 255 max_ttl 255", s.Peer)
	w("    }")
	var own, other []netip.Addr
	for _, a := range s.VIPs {
		if a.Is4() == s.Peer.Unmap().Is4() {
			own = append(own, a)
		} else {
			other = append(other, a)
		}
	}
	vip := func(a netip.Addr) string {
		if a.Is4() {
			return fmt.Sprintf("%s/32 dev %s", a, s.Interface)
		}
		return fmt.Sprintf("%s/128 dev %s -nodad preferred_lft 0", a, s.Interface)
	}
	w("    virtual_ipaddress {")
	for _, a := range own {
		w("        %s", vip(a))
	}
	w("    }")
	if len(other) > 0 {
		w("    virtual_ipaddress_excluded {")
		for _, a := range other {
			w("        %s", vip(a))
		}
		w("    }")
	}
	w("    track_file {")
	w("        medialb_health")
	w("    }")
	w("}")
	return b.String()
}

// advertSeconds writes an advertisement interval in seconds with up to two
// decimals (VRRPv3 counts in centiseconds).
func advertSeconds(d time.Duration) string {
	cs := max(d.Milliseconds()/10, 1)
	return strconv.FormatFloat(float64(cs)/100, 'f', -1, 64)
}

func quote(s string) string { return `"` + strings.NewReplacer(`"`, "", "\n", "").Replace(s) + `"` }

// supervisor runs keepalived in the foreground as medialb's child and starts it
// again when it dies. The child gets SIGTERM when medialb dies, however it dies
// (Pdeathsig, set from a thread that stays alive as long as the child): keepalived
// then sends a priority-0 advertisement and drops the VIPs, so the peer takes over
// at once.
type supervisor struct {
	bin, conf, pid, vrrpPid string
	log                     zerolog.Logger
	// beforeStart runs before every start of keepalived (after a stale one is
	// stopped): the node drops VIPs a killed keepalived left behind.
	beforeStart func()
	// gate, if not nil, holds the first start until it is closed.
	gate <-chan struct{}

	mu   sync.Mutex
	proc *os.Process
	held bool          // keepalived is kept stopped (hold)
	wake chan struct{} // hold(false) ends the wait of run
	done chan struct{}
}

func newSupervisor(bin, dir string, log zerolog.Logger) *supervisor {
	return &supervisor{
		bin:     bin,
		conf:    filepath.Join(dir, "keepalived.conf"),
		pid:     filepath.Join(dir, "keepalived.pid"),
		vrrpPid: filepath.Join(dir, "keepalived-vrrp.pid"),
		log:     log.With().Str("part", "keepalived").Logger(),
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
	}
}

// hold keeps keepalived stopped (on: a running one gets SIGTERM, which releases the
// VIPs with a priority-0 advertisement) or lets run start it again (off). It
// reports whether the setting changed.
func (s *supervisor) hold(on bool) bool {
	s.mu.Lock()
	changed := s.held != on
	s.held = on
	if on && s.proc != nil {
		s.proc.Signal(syscall.SIGTERM) // every call: one started meanwhile is stopped too
	}
	s.mu.Unlock()
	if !on && changed {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return changed
}

func (s *supervisor) isHeld() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// writeConfig writes the configuration file atomically.
func (s *supervisor) writeConfig(text string) error {
	if err := atomicfile.Write(s.conf, []byte(text), 0o600); err != nil {
		return fmt.Errorf("write keepalived configuration: %w", err)
	}
	return nil
}

// check runs keepalived's configuration test on the file written.
func (s *supervisor) check() error { return s.checkFile(s.conf) }

// checkFile runs keepalived's configuration test on file.
func (s *supervisor) checkFile(file string) error {
	out, err := exec.Command(s.bin, "--config-test", "-f", file).CombinedOutput()
	if err != nil {
		return fmt.Errorf("check keepalived configuration %s: %w: %s", file, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// killStale stops a keepalived left by an earlier medialb with the same state
// directory (its pid file names it), then removes the pid files, so the new one
// can take them.
func (s *supervisor) killStale() {
	for _, f := range []string{s.pid, s.vrrpPid} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 1 {
			continue
		}
		if !running(pid) {
			continue
		}
		s.log.Warn().Int("pid", pid).Msg("stopping a keepalived left by an earlier medialb")
		_ = syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; running(pid); i++ {
			if i == 30 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			if i == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// No keepalived of ours runs now: a pid file left naming a zombie (or a
	// reused pid) would make the new one believe it is already running and exit.
	for _, f := range []string{s.pid, s.vrrpPid} {
		_ = os.Remove(f)
	}
}

// run starts keepalived and restarts it when it dies, until ctx is done; then it
// stops keepalived (SIGTERM, which releases the VIPs) and returns.
func (s *supervisor) run(ctx context.Context) {
	defer close(s.done)
	if s.gate != nil {
		select {
		case <-ctx.Done():
			return
		case <-s.gate:
		}
	}
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		if s.isHeld() {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
			continue
		}
		started := time.Now()
		err := s.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if s.isHeld() {
			s.log.Warn().Err(err).Msg("keepalived stopped by medialb; held until the HA health file can be written")
			continue
		}
		s.log.Error().Err(err).Msg("keepalived exited; starting it again (VIP failover depends on it)")
		if time.Since(started) > 10*time.Second {
			backoff = 200 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// once runs one keepalived until it exits or ctx is done.
func (s *supervisor) once(ctx context.Context) error {
	s.killStale()
	if s.beforeStart != nil {
		s.beforeStart()
	}
	errc := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child exits: keep this
		// goroutine on its thread until the child is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(s.bin, "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
			"-f", s.conf, "-p", s.pid, "-r", s.vrrpPid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		out, err := cmd.StderrPipe()
		if err != nil {
			errc <- err
			return
		}
		cmd.Stdout = cmd.Stderr
		if err := cmd.Start(); err != nil {
			errc <- fmt.Errorf("start %s: %w (install keepalived)", s.bin, err)
			return
		}
		s.mu.Lock()
		s.proc = cmd.Process
		s.mu.Unlock()
		s.log.Info().Int("pid", cmd.Process.Pid).Msg("keepalived started")
		s.copyLog(out)
		err = cmd.Wait()
		s.mu.Lock()
		s.proc = nil
		s.mu.Unlock()
		if err == nil {
			err = errors.New("keepalived exited with status 0")
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.signal(syscall.SIGTERM)
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
		s.signal(syscall.SIGKILL)
		<-errc
	}
	return ctx.Err()
}

// copyLog turns keepalived's console lines into debug events (state changes
// reach medialb through the notify FIFO, not the log).
func (s *supervisor) copyLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		ev := s.log.Debug()
		if strings.Contains(line, "rror") || strings.Contains(line, "WARNING") {
			ev = s.log.Warn()
		}
		ev.Msg(line)
	}
}

// signal sends sig to the running keepalived, if any.
func (s *supervisor) signal(sig syscall.Signal) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	return s.proc.Signal(sig) == nil
}

// Pid returns the running keepalived's process id, 0 if none.
func (s *supervisor) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid
}

// running reports whether pid is a live keepalived (not gone, not a zombie
// waiting for a reaper).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...
	open, end := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
	if open < 0 || end < open || len(stat) < end+3 {
		return false
	}
	return string(stat[open+1:end]) == "keepalived" && stat[end+2] != 'Z' && stat[end+2] != 'X'
}
