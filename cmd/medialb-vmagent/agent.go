package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/probe"
	"golang.org/x/sys/unix"
)

// agent serves the host's requests; its methods are safe for concurrent use.
type agent struct {
	mu    sync.Mutex
	procs map[string]*proc
}

// proc is a process started with /start.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	code int
}

func newAgent() *agent { return &agent{procs: map[string]*proc{}} }

func (a *agent) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("POST /run", a.run)
	m.HandleFunc("POST /start", a.start)
	m.HandleFunc("POST /signal", a.signal)
	m.HandleFunc("GET /proc", a.proc)
	m.HandleFunc("PUT /file", a.file)
	m.HandleFunc("GET /file", a.readFile)
	m.HandleFunc("POST /probe", a.probe)
	m.HandleFunc("POST /frames", a.frames)
	m.HandleFunc("GET /cpu", a.cpu)
	m.HandleFunc("POST /channels", a.channels)
	m.HandleFunc("POST /affinity", a.affinity)
	return m
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (a *agent) run(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Argv      []string `json:"argv"`
		TimeoutMS int      `json:"timeout_ms"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Argv) == 0 {
		reply(w, nil, fmt.Errorf("run: want {\"argv\": [...]}: %v", err))
		return
	}
	to := time.Duration(req.TimeoutMS) * time.Millisecond
	if to <= 0 {
		to = time.Minute
	}
	ctx, cancel := context.WithTimeout(r.Context(), to)
	defer cancel()
	out, err := exec.CommandContext(ctx, req.Argv[0], req.Argv[1:]...).CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code, err = ee.ExitCode(), nil
	}
	reply(w, map[string]any{"out": string(out), "code": code}, err)
}

func (a *agent) start(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string   `json:"name"`
		Argv []string `json:"argv"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" || len(req.Argv) == 0 {
		reply(w, nil, fmt.Errorf("start: want {\"name\", \"argv\"}: %v", err))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.procs[req.Name]; p != nil {
		select {
		case <-p.done:
		default:
			if slices.Equal(p.cmd.Args, req.Argv) {
				// The host repeated a request whose answer it lost.
				reply(w, map[string]any{"pid": p.cmd.Process.Pid}, nil)
				return
			}
			reply(w, nil, fmt.Errorf("start %s: still running", req.Name))
			return
		}
	}
	log, err := os.Create(filepath.Join("/tmp", req.Name+".log"))
	if err != nil {
		reply(w, nil, err)
		return
	}
	cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		reply(w, nil, fmt.Errorf("start %s: %w", req.Name, err))
		return
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	a.procs[req.Name] = p
	go func() {
		cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		log.Close()
		close(p.done)
	}()
	reply(w, map[string]any{"pid": cmd.Process.Pid}, nil)
}

func (a *agent) get(name string) (*proc, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.procs[name]
	if p == nil {
		return nil, fmt.Errorf("no process %q was started", name)
	}
	return p, nil
}

func (a *agent) signal(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string `json:"name"`
		Signal int    `json:"signal"`
		WaitMS int    `json:"wait_ms"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply(w, nil, err)
		return
	}
	p, err := a.get(req.Name)
	if err != nil {
		reply(w, nil, err)
		return
	}
	if err := p.cmd.Process.Signal(syscall.Signal(req.Signal)); err != nil && !errors.Is(err, os.ErrProcessDone) {
		reply(w, nil, err)
		return
	}
	exited := false
	if req.WaitMS > 0 {
		select {
		case <-p.done:
			exited = true
		case <-time.After(time.Duration(req.WaitMS) * time.Millisecond):
		}
	}
	reply(w, map[string]any{"exited": exited}, nil)
}

func (a *agent) proc(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	p, err := a.get(name)
	if err != nil {
		reply(w, nil, err)
		return
	}
	running := true
	select {
	case <-p.done:
		running = false
	default:
	}
	log, _ := os.ReadFile(filepath.Join("/tmp", name+".log"))
	reply(w, map[string]any{"running": running, "code": p.code, "log": string(log)}, nil)
}

func (a *agent) file(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Query().Get("path")
	b, err := io.ReadAll(r.Body)
	if err == nil {
		os.MkdirAll(filepath.Dir(path), 0o755)
		err = os.WriteFile(path, b, 0o755) // programs are uploaded too
	}
	reply(w, map[string]any{"bytes": len(b)}, err)
}

// readFile answers the contents of the file at path (/proc/interrupts, say).
func (a *agent) readFile(w http.ResponseWriter, r *http.Request) {
	b, err := os.ReadFile(r.URL.Query().Get("path"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Write(b)
}

// probe runs probe.Sweep from this guest and answers the results.
func (a *agent) probe(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Srcs     []netip.Addr   `json:"srcs"`
		Targets  []probe.Target `json:"targets"`
		Parallel int            `json:"parallel"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply(w, nil, err)
		return
	}
	rs := probe.Sweep(r.Context(), lab.Local{}, req.Srcs, req.Targets, max(req.Parallel, 1))
	type res struct {
		Src    netip.Addr
		Target probe.Target
		Reply  probe.Reply
		Err    string
	}
	out := make([]res, len(rs))
	for i, x := range rs {
		out[i] = res{Src: x.Src, Target: x.Target, Reply: x.Reply}
		if x.Err != nil {
			out[i].Err = x.Err.Error()
		}
	}
	reply(w, out, nil)
}

// frames sends raw Ethernet frames out of an interface (the malformed-frame barrage).
func (a *agent) frames(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Ifname string   `json:"ifname"`
		Frames [][]byte `json:"frames"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply(w, nil, err)
		return
	}
	ifi, err := net.InterfaceByName(req.Ifname)
	if err != nil {
		reply(w, nil, err)
		return
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		reply(w, nil, fmt.Errorf("open packet socket: %w", err))
		return
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index}
	sent := 0
	for _, f := range req.Frames {
		if err := unix.Sendto(fd, f, 0, sa); err == nil {
			sent++
		}
	}
	reply(w, map[string]any{"sent": sent}, nil)
}
