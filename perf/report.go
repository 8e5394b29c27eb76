package perf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/medialb/medialb/pipeline"
)

// Markers around the part of BENCHMARKS.md that UpdateFile rewrites.
const (
	BeginMarker = "<!-- perf:begin -->"
	EndMarker   = "<!-- perf:end -->"
)

// Machine describes where a run happened.
type Machine struct {
	NProc  int
	CPU    string
	Kernel string
}

func (m Machine) String() string {
	return fmt.Sprintf("nproc %d, %s, kernel %s", m.NProc, m.CPU, m.Kernel)
}

func machine() Machine {
	m := Machine{NProc: runtime.NumCPU(), CPU: "unknown CPU", Kernel: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// ipvsStatus says whether the kernel has IPVS, the third reference of the comparison.
func ipvsStatus() string {
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		return "present (/proc/net/ip_vs) but not measured by this harness"
	}
	why := "no /proc/net/ip_vs"
	if b, err := readGzip("/proc/config.gz"); err == nil {
		switch {
		case bytes.Contains(b, []byte("# CONFIG_IP_VS is not set")):
			why += "; /proc/config.gz: # CONFIG_IP_VS is not set"
		case bytes.Contains(b, []byte("CONFIG_IP_VS=m")):
			why += "; CONFIG_IP_VS=m but the module is not loaded (modprobe ip_vs)"
		}
	}
	return "not built in (" + why + ")"
}

// ratio returns a/b, or 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Summary aggregates the repetitions of one point: medians, and the sums of the frame
// counts.
type Summary struct {
	Forwarder, Mix, CountAt string
	MeanSize                float64
	Queues, Reps            int
	Sent, Arrived, Mallocs  uint64
	Mpps, NsPerPacket       float64 // medians over the repetitions
	NsMin, NsMax            float64
	Busy, Others            float64 // medians
	// Split of NsPerPacket (medians): NAPI kernel threads, workers in user space and
	// workers in the kernel.
	NapiNs, UserNs, SysNs float64
	Batches, TxKicks      uint64 // totals (medialb)
	// FastPathTX and Forwarded are totals: frames sent by the steering program's fast
	// path (medialb+fastpath) and by the forwarder in all.
	FastPathTX, Forwarded uint64
}

// CoreMpps returns 1000 / NsPerPacket: the rate of one fully busy forwarding core.
func (s Summary) CoreMpps() float64 { return ratio(1e3, s.NsPerPacket) }

// AllocsPerPacket returns the heap allocations per arrived frame over all repetitions.
func (s Summary) AllocsPerPacket() float64 { return ratio(float64(s.Mallocs), float64(s.Arrived)) }

// Summaries groups r.Points by forwarder, mix, queue count and counting place, in the
// order they were first measured.
func (r *Results) Summaries() []Summary {
	type key struct {
		fwd, mix, at string
		q            int
	}
	var order []key
	groups := map[key][]Point{}
	for _, p := range r.Points {
		k := key{p.Forwarder, p.Mix, p.CountAt, p.Queues}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], p)
	}
	var out []Summary
	for _, k := range order {
		ps := groups[k]
		s := Summary{Forwarder: k.fwd, Mix: k.mix, CountAt: k.at, Queues: k.q, MeanSize: ps[0].MeanSize, Reps: len(ps)}
		var mpps, ns, busy, others, napi, user, sys []float64
		per := func(d time.Duration, n uint64) float64 { return ratio(float64(d.Nanoseconds()), float64(n)) }
		for _, p := range ps {
			napi = append(napi, per(p.NapiCPU, p.Arrived))
			user = append(user, per(p.UserCPU, p.Arrived))
			sys = append(sys, per(p.SysCPU, p.Arrived))
			s.Batches += p.Batches
			s.TxKicks += p.TxKicks
			s.FastPathTX += p.FastPathTX
			s.Forwarded += p.Forwarded
			s.Sent += p.Sent
			s.Arrived += p.Arrived
			s.Mallocs += p.Mallocs
			mpps = append(mpps, p.Mpps())
			ns = append(ns, p.NsPerPacket())
			busy = append(busy, p.CoreBusy)
			others = append(others, p.OthersBusy())
		}
		s.Mpps, s.NsPerPacket, s.Busy, s.Others = median(mpps), median(ns), median(busy), median(others)
		s.NsMin, s.NsMax = slices.Min(ns), slices.Max(ns)
		s.NapiNs, s.UserNs, s.SysNs = median(napi), median(user), median(sys)
		out = append(out, s)
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func findSummary(ss []Summary, fwd, mix string, q int, at string) (Summary, bool) {
	for _, s := range ss {
		if s.Forwarder == fwd && s.Mix == mix && s.Queues == q && s.CountAt == at {
			return s, true
		}
	}
	return Summary{}, false
}

// Markdown renders r as the BENCHMARKS.md section, markers included. command is the
// command line that produced it.
func (r *Results) Markdown(command string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("%s\n## Layer 4 (direct routing): forwarding rate, CPU per packet, latency\n\n", BeginMarker)
	w("Produced by `%s` on %s (the run took %s).  \n", command, r.Start.Format("2006-01-02 15:04 MST"), r.Took.Round(time.Second))
	w("Machine: %s. **The machine is shared** (other jobs ran on the same cores during the run):\n", r.Machine)
	w("absolute rates move from run to run; the figures to trust are the ratios between forwarders\n")
	w("measured in the same run on the same lab. Load average %s at the start, %s at the end; the\n", r.LoadStart, r.LoadEnd)
	w("`others` column is the forwarding CPU's busy time not spent by the forwarding threads.\n\n")
	w("Lab: namespaces made by the harness (switch with a bridge, client, load balancer, two real\n")
	w("servers holding the VIP on lo), veth pairs, XDP in %s mode on the load balancer's veth.\n", orUnknown(r.XDPMode))
	w("Generator: %s, %d source addresses, %s frames (UDP, TCP ACK, UDP, TCP SYN, ...) to the VIP's\n", r.Generator, r.Config.Sources, r.Config.Proto)
	w("media ports. Forwarding threads (the load balancer veth's threaded-NAPI kernel thread and, for medialb,\n")
	w("the pipeline worker) are pinned to CPU %d; the generator and the bridge work of forwarded frames\n", r.Config.FwdCPU)
	w("(threaded NAPI of the bridge port) to CPU %d (`taskset -pc`). Arrivals are counted by an XDP program on\n", r.Config.GenCPU)
	w("the bridge port facing the load balancer (`switch`: frames the load balancer put on the wire with a real\n")
	w("server's destination MAC, dropped there, so that the bridge and real-server work does not load the\n")
	w("generator's CPU) or on the real servers' veths (`server`: frames with the server's MAC after the bridge):\n")
	w("forwarded = arrived, not sent. %s of sending per point after a warm-up of a tenth of that.\n\n", r.Config.Duration)
	w("References: **xdp_tx** = xdpref.AttachXDPTXForwarder (in-kernel MAC rewrite + XDP_TX, one real server);\n")
	w("**medialb** = afxdp.Open + one pipeline.Worker per RX queue (Harmonic_Traffic service, two real servers,\n")
	batch := "the pipeline's default, " + fmt.Sprint(pipeline.DefaultBatchSize)
	if r.Config.BatchSize > 0 {
		batch = fmt.Sprint(r.Config.BatchSize)
	}
	w("Maglev + source-IP persistence; worker batch size %s), in process;\n", batch)
	w("**medialb+fastpath** = medialb with the steering program's fast path (afxdp.FastPath): the worker records\n")
	w("each client's server in a hash map after its pick, the program then forwards that client itself (MAC\n")
	w("rewrite, XDP_TX) while the snapshot generation is unchanged; new clients go through the pipeline.\n")
	w("**IPVS DR**: %s.\n\n", r.IPVS)

	w("### Rate and cost per packet\n\n")
	w("`Mpps` is the arrival rate at the real servers; when the forwarding CPU is not saturated (busy < 100%%),\n")
	w("it is the generator's limit, not the forwarder's. `ns/pkt` is the CPU time of the forwarding threads per\n")
	w("arrived frame (scheduler runtime from /proc/TID/schedstat; `perf stat` has no hardware counters here), and\n")
	w("`Mpps/core` = 1000 / ns/pkt, the rate one fully busy forwarding core would reach. `allocs/pkt` is the\n")
	w("whole process's runtime.MemStats.Mallocs delta (generator, harness and workers) over the point, per packet.\n\n")
	ss := r.Summaries()
	w("| mix (mean B) | forwarder | RX queues | counted at | runs | sent | arrived | Mpps | fwd CPU busy (others) | ns/pkt (min-max) | Mpps/core | allocs/pkt |\n")
	w("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range ss {
		w("| %s (%.0f) | %s | %d | %s | %d | %d | %d | %.3f | %.0f%% (%.0f%%) | %.0f (%.0f-%.0f) | %.2f | %.5f |\n",
			s.Mix, s.MeanSize, s.Forwarder, s.Queues, s.CountAt, s.Reps, s.Sent, s.Arrived, s.Mpps, 100*s.Busy, 100*s.Others,
			s.NsPerPacket, s.NsMin, s.NsMax, s.CoreMpps(), s.AllocsPerPacket())
	}
	w("\nMedians over the runs (sent and arrived are totals).\n")
	w("\n### medialb / xdp_tx, same run\n\n")
	w("| forwarder | mix | RX queues | counted at | arrived Mpps ratio | per-core capacity ratio (ns/pkt xdp_tx / medialb) |\n|---|---|---|---|---:|---:|\n")
	for _, s := range ss {
		if s.Forwarder == FwdXDPTX {
			continue
		}
		ref, ok := findSummary(ss, FwdXDPTX, s.Mix, s.Queues, s.CountAt)
		if !ok {
			continue
		}
		w("| %s | %s | %d | %s | %.2f | %.2f |\n", s.Forwarder, s.Mix, s.Queues, s.CountAt, ratio(s.Mpps, ref.Mpps), ratio(ref.NsPerPacket, s.NsPerPacket))
	}
	fastHeader := false
	for _, s := range ss {
		if s.Forwarder != FwdMedialbFastpath {
			continue
		}
		if !fastHeader {
			w("\nmedialb+fastpath: frames sent by the steering program's fast path (XDP_TX) vs. all it forwarded. The\n")
			w("warm-up sends from every generator source, so the workers record the clients' servers before the\n")
			w("measured window: these points are the steady state of known clients (a new client's first frames go\n")
			w("through the pipeline, plus one map update per batch with new clients: see the afxdp benchmark).\n\n")
			w("| mix | RX queues | counted at | forwarded | of which fast path | share |\n|---|---|---|---:|---:|---:|\n")
			fastHeader = true
		}
		w("| %s | %d | %s | %d | %d | %.4f |\n", s.Mix, s.Queues, s.CountAt, s.Forwarded, s.FastPathTX, ratio(float64(s.FastPathTX), float64(s.Forwarded)))
	}
	w("\n### Where the forwarding core's time goes\n\n")
	w("Per arrived frame (medians): the NAPI kernel thread (veth receive, the XDP program, for medialb the\n")
	w("copy into the UMEM), and the medialb workers in user space (parse, tables, rings: Go code) and in the\n")
	w("kernel (sendto, which in copy mode builds and sends one sk_buff per frame, and poll); user/kernel\n")
	w("from /proc/TID/stat at 10 ms resolution.\n\n")
	w("| forwarder | mix | RX queues | counted at | NAPI ns/pkt | worker user ns/pkt | worker kernel ns/pkt | frames/batch | sendto/batch |\n|---|---|---|---|---:|---:|---:|---:|---:|\n")
	for _, s := range ss {
		fpb, kpb := "-", "-"
		if s.Batches > 0 {
			fpb = fmt.Sprintf("%.1f", ratio(float64(s.Arrived), float64(s.Batches)))
			kpb = fmt.Sprintf("%.2f", ratio(float64(s.TxKicks), float64(s.Batches)))
		}
		w("| %s | %s | %d | %s | %.0f | %.0f | %.0f | %s | %s |\n", s.Forwarder, s.Mix, s.Queues, s.CountAt, s.NapiNs, s.UserNs, s.SysNs, fpb, kpb)
	}
	w("\n### 1 vs. 2 RX queues\n\n")
	w("With 2 queues the second queue's threads run on CPU %d, which the generator also uses: on a 2-core\n", r.Config.GenCPU)
	w("machine this shows whether the work spreads, not a clean doubling.\n\n")
	w("| forwarder | mix | Mpps 1 queue | Mpps 2 queues | scaling | ns/pkt 1 queue | ns/pkt 2 queues |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, s := range ss {
		if s.Queues == 1 {
			continue
		}
		one, ok := findSummary(ss, s.Forwarder, s.Mix, 1, s.CountAt)
		if !ok {
			continue
		}
		w("| %s | %s | %.3f | %.3f | %.2fx | %.0f | %.0f |\n", s.Forwarder, s.Mix, one.Mpps, s.Mpps, ratio(s.Mpps, one.Mpps), one.NsPerPacket, s.NsPerPacket)
	}
	if len(r.Latency) > 0 {
		w("\n### Latency added at a low rate\n\n")
		w("UDP ping-pong from the client, one at a time with 200 µs between them, to the echo on the real\n")
		w("servers (answers `server=NAME client=IP:PORT` like vossim): directly to the real server's own address,\n")
		w("and through the VIP with each forwarder (the answer comes back directly, as DR wants).\n\n")
		w("| path | pings | lost | p50 | p99 | max | p50 added |\n|---|---:|---:|---:|---:|---:|---:|\n")
		var direct time.Duration
		for _, l := range r.Latency {
			if l.Path == "direct" {
				direct = l.P50
			}
		}
		for _, l := range r.Latency {
			add := "-"
			if l.Path != "direct" {
				add = (l.P50 - direct).Round(time.Microsecond / 10).String()
			}
			w("| %s | %d | %d | %s | %s | %s | %s |\n", l.Path, l.Sent, l.Lost, rnd(l.P50), rnd(l.P99), rnd(l.Max), add)
		}
	}
	w("\n<details><summary>Every run</summary>\n\n| forwarder | mix | queues | counted at | run | sent | forwarded | arrived | s | fwd CPU | gen CPU | busy | mallocs | kernel and worker counters |\n|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, p := range r.Points {
		w("| %s | %s | %d | %s | %d | %d | %d | %d | %.2f | %s | %s | %.0f%% | %d | %s |\n", p.Forwarder, p.Mix, p.Queues, p.CountAt, p.Rep,
			p.Sent, p.Forwarded, p.Arrived, p.Elapsed.Seconds(), p.FwdCPU.Round(time.Millisecond), p.GenCPU.Round(time.Millisecond),
			100*p.CoreBusy, p.Mallocs, p.Detail)
	}
	w("\n</details>\n")
	for _, n := range r.Notes {
		w("\n%s\n", n)
	}
	w("\nControl-plane figures (table build, Maglev, lookups, persistence) come from\n")
	w("`go test -run=NONE -bench=. -benchmem ./tables/` (see that section).\n")
	w("%s\n", EndMarker)
	return b.String()
}

func rnd(d time.Duration) string { return d.Round(time.Microsecond / 10).String() }

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// UpdateFile replaces the part of the file at path between BeginMarker and EndMarker
// (markers included) with section, which must carry the markers itself. A file without
// the markers gets section appended; a missing file is created with a title.
func UpdateFile(path, section string) error {
	return updateFile(path, section, BeginMarker, EndMarker)
}

// updateFile is UpdateFile with the markers given.
func updateFile(path, section, begin, end string) error {
	old, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		old = []byte("# medialb benchmarks\n\n")
	} else if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	out, err := replaceSectionBetween(string(old), section, begin, end)
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func replaceSection(doc, section string) (string, error) {
	return replaceSectionBetween(doc, section, BeginMarker, EndMarker)
}

func replaceSectionBetween(doc, section, BeginMarker, EndMarker string) (string, error) {
	i := strings.Index(doc, BeginMarker)
	j := strings.Index(doc, EndMarker)
	switch {
	case i < 0 && j < 0:
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		return doc + "\n" + section, nil
	case i < 0 || j < i:
		return "", fmt.Errorf("markers %s and %s are unpaired or out of order: fix the file by hand", BeginMarker, EndMarker)
	}
	rest := doc[j+len(EndMarker):]
	rest = strings.TrimPrefix(rest, "\n")
	return doc[:i] + section + rest, nil
}
