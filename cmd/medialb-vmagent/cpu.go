package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/lab/vm"
)

// cpu answers the guest's CPU accounting (vm.CPUSample): per-vCPU times, network
// softirqs per vCPU, every thread's times.
func (a *agent) cpu(w http.ResponseWriter, r *http.Request) {
	s, err := vm.ReadCPUSample("/proc")
	reply(w, s, err)
}

// channels sets an interface's channel count (ethtool -L IF combined N).
func (a *agent) channels(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Ifname   string `json:"ifname"`
		Combined int    `json:"combined"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Ifname == "" {
		reply(w, nil, fmt.Errorf("channels: want {\"ifname\", \"combined\"}: %v", err))
		return
	}
	reply(w, map[string]any{"combined": req.Combined}, afxdp.SetChannels(req.Ifname, req.Combined))
}

// affinity pins every thread whose name matches one of the patterns (path.Match:
// "medialb", "napi/eth0-*") to the given CPUs, and answers the threads it pinned.
func (a *agent) affinity(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Match []string `json:"match"`
		CPUs  []int    `json:"cpus"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Match) == 0 || len(req.CPUs) == 0 {
		reply(w, nil, fmt.Errorf("affinity: want {\"match\": [patterns], \"cpus\": [...]}: %v", err))
		return
	}
	var set unix.CPUSet
	for _, c := range req.CPUs {
		set.Set(c)
	}
	threads, err := vm.ReadThreads("/proc", 0)
	if err != nil {
		reply(w, nil, err)
		return
	}
	var pinned []string
	for _, t := range threads {
		if !slices.ContainsFunc(req.Match, func(p string) bool { ok, _ := path.Match(p, t.Comm); return ok }) {
			continue
		}
		if err := unix.SchedSetaffinity(t.TID, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			reply(w, nil, fmt.Errorf("pin thread %d (%s) to CPUs %v: %w", t.TID, t.Comm, req.CPUs, err))
			return
		}
		pinned = append(pinned, fmt.Sprintf("%s/%d", t.Comm, t.TID))
	}
	if len(pinned) == 0 {
		reply(w, nil, fmt.Errorf("affinity: no thread matches %v", req.Match))
		return
	}
	reply(w, map[string]any{"pinned": pinned}, nil)
}
