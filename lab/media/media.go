// Package media runs real media software in the namespace lab: nginx with the RTMP module,
// ffmpeg as RTSP and MPEG-TS/UDP receiver on the real servers, ffmpeg publishing a
// generated test pattern with audio from client namespaces, and ffprobe pulling a stream
// back. It parses what they report so that the demo and the lab tests can tell which real
// server took a stream, which client address it saw, and how many frames and bytes went
// in and came out.
//
// Everything runs inside lab namespaces (lab.Exec) with files in a directory of the
// caller's: nginx gets its own configuration, pid file, logs and temporary paths there
// (`nginx -c FILE -p DIR -e LOG -g 'daemon off;'`), never the system's /etc/nginx or its
// service. The Debian packages are ffmpeg (ffmpeg, ffprobe), nginx and libnginx-mod-rtmp;
// FindTools says which are missing.
//
// A publisher runs in a client host of its own (lab.AddClient, see NewClients): ffmpeg
// cannot choose the source address of its RTMP and RTSP (TCP) connections, and a host per
// client gives each stream its own address without routing tricks, reconnects from the
// same address, and the host's kernel counters per client.
//
// Real servers keep vossim for /admin/status; lab.SetVOSMedia frees 1935 and 554 there.
package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/medialb/medialb/lab"
)

// Proto is a media transport.
type Proto string

// The transports the lab publishes with.
const (
	RTMP   Proto = "rtmp"       // FLV over RTMP (TCP 1935) to nginx-rtmp
	RTSP   Proto = "rtsp"       // RTP interleaved in RTSP over TCP (554) to ffmpeg in listen mode
	MPEGTS Proto = "mpegts/udp" // MPEG-TS in UDP datagrams of 7 TS packets to ffmpeg
)

// DefaultRTMPModule is where Debian's libnginx-mod-rtmp puts the module.
const DefaultRTMPModule = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

// Tools are the programs this package runs.
type Tools struct {
	FFmpeg, FFprobe, Nginx string // executables
	RTMPModule             string // nginx's RTMP module (.so)
}

// FindTools looks the programs up in PATH (and /usr/sbin for nginx) and the RTMP module at
// DefaultRTMPModule. The error names the Debian packages to install; tests skip with it.
func FindTools() (Tools, error) {
	var t Tools
	var missing []string
	look := func(name, pkg string, dirs ...string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range dirs {
			if st, err := os.Stat(d + "/" + name); err == nil && !st.IsDir() {
				return d + "/" + name
			}
		}
		missing = append(missing, name+" (Debian package "+pkg+")")
		return ""
	}
	t.FFmpeg = look("ffmpeg", "ffmpeg")
	t.FFprobe = look("ffprobe", "ffmpeg")
	t.Nginx = look("nginx", "nginx", "/usr/sbin")
	if _, err := os.Stat(DefaultRTMPModule); err == nil {
		t.RTMPModule = DefaultRTMPModule
	} else {
		missing = append(missing, DefaultRTMPModule+" (Debian package libnginx-mod-rtmp)")
	}
	if len(missing) > 0 {
		return t, fmt.Errorf("find media tools: missing %s; install them: apt-get install ffmpeg nginx libnginx-mod-rtmp", strings.Join(missing, ", "))
	}
	return t, nil
}

// Pattern is the generated test stream: lavfi testsrc video (H.264, one key frame per
// second) and a 440 Hz sine (AAC).
type Pattern struct {
	Width, Height int           // default 320x240
	Rate          int           // frames per second; default 25
	Duration      time.Duration // default 4s
}

func (p Pattern) withDefaults() Pattern {
	if p.Width == 0 || p.Height == 0 {
		p.Width, p.Height = 320, 240
	}
	if p.Rate == 0 {
		p.Rate = 25
	}
	if p.Duration == 0 {
		p.Duration = 4 * time.Second
	}
	return p
}

// proc is a program started in a lab namespace.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it exited; err is set then
	err  error
	out  *lab.TailBuffer // stderr (and stdout, unless the caller takes it)
}

// startIn starts name in namespace ns. stdout, if not nil, gets the standard output.
func startIn(ns string, stdout io.Writer, name string, args ...string) (*proc, error) {
	cmd := lab.Exec(ns, name, args...)
	// ip execs the program in place: the death signal reaches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), out: &lab.TailBuffer{Max: 8192}}
	cmd.Stderr = p.out
	cmd.Stdout = p.out
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, ns, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop sends sig, waits up to timeout, then kills. It returns the exit error, if any
// other than the signal's own.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) error {
	p.cmd.Process.Signal(sig) //nolint:errcheck // may have exited
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill() //nolint:errcheck // may have exited
		<-p.done
		return fmt.Errorf("stop %s: killed, no exit %s after %s", p.name, sig, timeout)
	}
	return nil
}

// stopFFmpeg stops an ffmpeg receiver: its first SIGTERM ends it after the read under
// way (a receiver's reads time out within 3 s), the second interrupts the read. With
// -flush_packets 1 every packet is already in the recording by then.
func (p *proc) stopFFmpeg() error {
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
	select {
	case <-p.done:
		return nil
	case <-time.After(3500 * time.Millisecond):
	}
	return p.stop(syscall.SIGTERM, 3*time.Second)
}

// wait waits for the program to exit or ctx to end (then it is stopped with SIGTERM).
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		p.stop(syscall.SIGTERM, 3*time.Second) //nolint:errcheck // the context's error says why
		return ctx.Err()
	}
}

// lastLines returns the last n non-empty lines of s, joined by " | ".
func lastLines(s string, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, " | ")
}

// runIn runs a program in ns to its end and returns its standard output; the error carries
// the end of its standard error.
func runIn(ctx context.Context, ns, name string, args ...string) ([]byte, error) {
	var stdout bytes.Buffer
	p, err := startIn(ns, &stdout, name, args...)
	if err != nil {
		return nil, err
	}
	if err := p.wait(ctx); err != nil {
		return stdout.Bytes(), fmt.Errorf("run %s in %s: %w: %s", name, ns, err, lastLines(p.out.String(), 3))
	}
	return stdout.Bytes(), nil
}

var errStopped = errors.New("stopped")
