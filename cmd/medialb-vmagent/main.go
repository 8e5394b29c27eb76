// Command medialb-vmagent is the init process (PID 1) of the VM lab's guests (package
// lab/vm): booted from the lab's initramfs, it mounts /proc, /sys and /dev, loads the
// kernel modules the initramfs lists, sets up the guest's lab interface from the kernel
// command line with the namespace lab's own provisioning code (lab.Provision), and then
// serves the host's lab on TCP port 7000 of that interface:
//
//	POST /run     {"argv": [...], "timeout_ms": N}   run, answer {"out", "code"}
//	POST /start   {"name": N, "argv": [...]}        start in the background (log /tmp/N.log)
//	POST /signal  {"name": N, "signal": 9}          signal a started process
//	GET  /proc?name=N                               {"running", "code", "log"}
//	PUT  /file?path=P                               write the body to P
//	GET  /file?path=P                               read P
//	POST /probe   {"srcs": [...], "targets": [...]}  probe.Sweep from this guest
//	POST /frames  {"ifname", "frames": [[...]]}     send raw Ethernet frames
//	GET  /cpu                                       CPU accounting (vm.CPUSample)
//	POST /channels {"ifname", "combined": N}        ethtool -L IF combined N
//	POST /affinity {"match": ["napi/eth0-*"], "cpus": [0]}  pin matching threads
//
// Kernel command line: medialb.role=client|loadbalancer|realserver medialb.name=NAME
// medialb.addr=IP/LEN[,IP/LEN...] medialb.vip=IP[,IP...] medialb.onlink=PREFIX[,...]
// medialb.modules=a,b,c (file names under /lib/modules in load order).
// The agent is for the lab's private bridge only: it runs what it is asked as root.
package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/medialb/medialb/lab/probe"
)

// agentPort is the TCP port the agent serves on; lab/vm uses the same number.
const agentPort = 7000

func main() {
	if err := boot(); err != nil {
		fmt.Fprintln(os.Stderr, "medialb-vmagent: boot:", err)
		// PID 1 must not exit (the kernel panics): keep serving what we can.
	}
	// TCG guests on a shared host answer slowly: a probe waits longer than in the
	// namespace lab before it calls a flow lost.
	probe.Timeout = 10 * time.Second
	a := newAgent()
	srv := &http.Server{Addr: fmt.Sprintf(":%d", agentPort), Handler: a.mux(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, "medialb-vmagent: serving on", srv.Addr)
	for {
		err := srv.ListenAndServe()
		fmt.Fprintln(os.Stderr, "medialb-vmagent: serve:", err)
		time.Sleep(time.Second)
	}
}

// cmdline returns the medialb.* parameters of the kernel command line.
func cmdline() map[string]string {
	b, _ := os.ReadFile("/proc/cmdline")
	out := map[string]string{}
	for _, f := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.HasPrefix(k, "medialb.") {
			out[strings.TrimPrefix(k, "medialb.")] = v
		}
	}
	return out
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
