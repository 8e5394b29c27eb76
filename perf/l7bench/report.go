package l7bench

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
)

// The generated part of the Markdown section lies between these markers; UpdateFile
// rewrites only that part, so hand-written notes after the end marker stay.
const (
	BeginMarker = "<!-- l7bench:begin -->"
	EndMarker   = "<!-- l7bench:end -->"
	// Heading is the section UpdateFile appends when the markers are absent.
	Heading = "## l7 vs HAProxy (lab)"
)

func numCPU() int { return runtime.NumCPU() }

// row is one line of the table: a point, how to read its measures, its unit.
type row struct {
	label  string
	point  Point
	unit   string
	value  func(Measure) (float64, bool)
	higher bool // higher is better
}

func val(m Measure) (float64, bool) { return m.Value, true }

// cpuPerGB is CPU seconds per GB (1e9 bytes) relayed.
func cpuPerGB(m Measure) (float64, bool) {
	if m.CPU == 0 || m.Work == 0 {
		return 0, false
	}
	return m.CPU.Seconds() / (m.Work / 1e9), true
}

// cpuPerConn is CPU microseconds per connection.
func cpuPerConn(m Measure) (float64, bool) {
	if m.CPU == 0 || m.Work == 0 {
		return 0, false
	}
	return m.CPU.Seconds() * 1e6 / m.Work, true
}

func (r *Results) rows() []row {
	var rows []row
	rows = append(rows, r.bulkRows()...)
	rows = append(rows,
		row{fmt.Sprintf("new connections/s (wrk -c %d, Connection: close)", r.Config.RateConns), "rate", "conn/s", val, true},
		row{"p99 latency of those connections", "rate-p99", "ms", val, false},
		row{"small request p50 (wrk -c 1, kept alive)", "latency-p50", "ms", val, false},
		row{"small request p99 (wrk -c 1, kept alive)", "latency-p99", "ms", val, false},
	)
	for _, bw := range r.bulkRows() {
		rows = append(rows, row{"proxy CPU per GB relayed, " + bw.label, bw.point, "CPU s/GB", cpuPerGB, false})
	}
	rows = append(rows, row{"proxy CPU per connection (rate point)", "rate", "CPU µs/conn", cpuPerConn, false})
	return rows
}

// bulkRows are the throughput points: uploads (client to server), then downloads.
func (r *Results) bulkRows() []row {
	var rows []row
	for _, n := range r.Config.Streams {
		rows = append(rows, row{fmt.Sprintf("upload, %d stream(s) (iperf3)", n), fmt.Sprintf("stream%d", n), "Gbit/s", val, true})
	}
	for _, n := range r.Config.Downloads {
		rows = append(rows, row{fmt.Sprintf("download, %d stream(s) (iperf3 -R)", n), fmt.Sprintf("download%d", n), "Gbit/s", val, true})
	}
	return rows
}

// values returns the row's values for key (Key(setup, proxy)), in repeat order.
func (r *Results) values(key string, rw row) []float64 {
	var out []float64
	for _, m := range r.Values[key][rw.point] {
		if v, ok := rw.value(m); ok {
			out = append(out, v)
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtNum(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func cell(v []float64) string {
	if len(v) == 0 {
		return "–"
	}
	all := make([]string, len(v))
	for i, x := range v {
		all[i] = fmtNum(x)
	}
	return "**" + fmtNum(median(v)) + "** (" + strings.Join(all, " / ") + ")"
}

// Ratio returns median(medialb) / median(haproxy) for a point's values in setup s (0
// when either is missing).
func (r *Results) Ratio(s Setup, point Point) float64 {
	m := median(r.values(Key(s, Medialb), row{point: point, value: val}))
	h := median(r.values(Key(s, HAProxy), row{point: point, value: val}))
	if m == 0 || h == 0 {
		return 0
	}
	return m / h
}

// Markdown renders the figures (without the section heading).
func (r *Results) Markdown(command string) string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "Command (root, from the repository root, after `make build`): `%s`\n", command)
	fmt.Fprintf(&b, "Date: %s (%s); kernel %s; `nproc`: %d; load average at the start: %s.\n",
		r.Start.Format("2006-01-02T15:04Z"), r.End, r.Kernel, numCPU(), r.Load)
	fmt.Fprintf(&b, "%s. %d repeats of %s per point, setups and proxies taking turns; each cell is the **median** (every repeat in brackets).\n",
		r.HAProxy, c.Repeats, c.Duration)
	fmt.Fprintf(&b, "Both proxies: VIP 192.168.94.100 ports 8080, 8443, %d in the lab's load-balancer namespace, source-IP persistence, "+
		"real servers HM1/HM2 on the client's port, connections from the load balancer's own address; medialb is `bin/medialb run`, "+
		"HAProxy `haproxy -f GENERATED.cfg -db` (`mode tcp`, `balance source`, default nbthread, no splicing options). "+
		"`direct` is the client talking to HM1's own address (no proxy): the ceiling of this lab.\n", BenchPort)
	fmt.Fprintf(&b, "Setups: **%s**: medialb's configuration also holds the layer-4 service Harmonic_Traffic (%s, direct routing, "+
		"ports 1935, 554, 50000-65535), so its XDP steering program is attached to the interface the layer-7 traffic arrives on "+
		"(the guide's deployment); **%s**: the same with `node.xdp_mode: generic` (when measured); **%s**: the layer-7 service alone, "+
		"no XDP program. HAProxy runs the layer-7 service alone in all. "+
		"**pinned**: each proxy started on CPU %d only (its thread's affinity, inherited from the start: Go sees one CPU, "+
		"GOMAXPROCS 1; HAProxy runs one thread), checked in /proc/PID/task/*/status; **unpinned**: GOMAXPROCS = nbthread = %d. "+
		"Client, servers and iperf3/wrk are never pinned.\n\n", TwoVIP, l4VIP, TwoVIPGeneric, L7Only, c.PinCPU, numCPU())

	b.WriteString("Summary, medialb / HAProxy (medians; goals: throughput ≥ 1.0, new connections/s ≥ 0.9):\n\n| setup |")
	bulk := r.bulkRows()
	for _, bw := range bulk {
		b.WriteString(" " + bw.label + " |")
	}
	b.WriteString(" new connections/s | goals |\n| --- |")
	for range bulk {
		b.WriteString(" ---: |")
	}
	b.WriteString(" ---: | --- |\n")
	for _, s := range c.Setups {
		fmt.Fprintf(&b, "| %s |", s.Name())
		met := true
		for _, bw := range bulk {
			v := r.Ratio(s, bw.point)
			met = met && v >= 1.0
			fmt.Fprintf(&b, " %.2f |", v)
		}
		v := r.Ratio(s, "rate")
		met = met && v >= 0.9
		verdict := "met"
		if !met {
			verdict = "**not met**"
		}
		fmt.Fprintf(&b, " %.2f | %s |\n", v, verdict)
	}
	for i, s := range c.Setups {
		fmt.Fprintf(&b, "\n#### %s\n\n", s.Name())
		r.setupTable(&b, s, i == 0)
	}
	var errs []string
	for key, pts := range r.Values {
		for _, pt := range []Point{"rate", "latency-p50"} {
			for i, m := range pts[pt] {
				if m.Errors != "" {
					errs = append(errs, fmt.Sprintf("%s %s repeat %d: %s", key, pt, i+1, m.Errors))
				}
			}
		}
	}
	slices.Sort(errs)
	b.WriteString("\n")
	if slices.Contains(c.Proxies, MedialbAlt) {
		fmt.Fprintf(&b, "medialb-alt: %s/medialb with environment %q.\n", c.AltBinDir, c.AltEnv)
	}
	if len(errs) > 0 {
		b.WriteString("wrk reported errors: " + strings.Join(errs, "; ") + ".\n")
	} else {
		b.WriteString("wrk reported no socket errors and no non-2xx answers.\n")
	}
	return b.String()
}

// setupTable writes the table of setup s; direct appears in the first setup only.
func (r *Results) setupTable(b *strings.Builder, s Setup, first bool) {
	proxies := []string{}
	for _, p := range []string{Medialb, MedialbAlt, HAProxy, Direct} {
		if slices.Contains(r.Config.Proxies, p) && (p != Direct || first) {
			proxies = append(proxies, p)
		}
	}
	b.WriteString("| point | unit |")
	for _, p := range proxies {
		b.WriteString(" " + p + " |")
	}
	b.WriteString(" medialb / haproxy |\n| --- | --- |")
	for range proxies {
		b.WriteString(" --- |")
	}
	b.WriteString(" --- |\n")
	for _, rw := range r.rows() {
		fmt.Fprintf(b, "| %s | %s |", rw.label, rw.unit)
		for _, p := range proxies {
			b.WriteString(" " + cell(r.values(Key(s, p), rw)) + " |")
		}
		m, h := median(r.values(Key(s, Medialb), rw)), median(r.values(Key(s, HAProxy), rw))
		if m > 0 && h > 0 {
			fmt.Fprintf(b, " %.2f |\n", m/h)
		} else {
			b.WriteString(" – |\n")
		}
	}
}

// UpdateFile writes section between BeginMarker and EndMarker in the Markdown file at
// path, appending Heading and the markers when they are absent. The rest of the file
// is kept byte for byte.
func UpdateFile(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("update %s: %w", path, err)
	}
	block := BeginMarker + "\n" + strings.TrimRight(section, "\n") + "\n" + EndMarker
	var out []byte
	i := bytes.Index(old, []byte(BeginMarker))
	j := bytes.Index(old, []byte(EndMarker))
	switch {
	case i >= 0 && j > i:
		out = append(out, old[:i]...)
		out = append(out, block...)
		out = append(out, old[j+len(EndMarker):]...)
	case i >= 0 || j >= 0:
		return fmt.Errorf("update %s: only one of %s and %s present; fix the file by hand", path, BeginMarker, EndMarker)
	default:
		out = append(out, bytes.TrimRight(old, "\n")...)
		if len(out) > 0 {
			out = append(out, "\n\n"...)
		}
		out = append(out, Heading+"\n\n"+block+"\n"...)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	return nil
}
