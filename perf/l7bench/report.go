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
	for _, n := range r.Config.Streams {
		p := fmt.Sprintf("stream%d", n)
		rows = append(rows, row{fmt.Sprintf("throughput, %d stream(s) (iperf3)", n), p, "Gbit/s", val, true})
	}
	rows = append(rows,
		row{fmt.Sprintf("new connections/s (wrk -c %d, Connection: close)", r.Config.RateConns), "rate", "conn/s", val, true},
		row{"p99 latency of those connections", "rate-p99", "ms", val, false},
		row{"small request p50 (wrk -c 1, kept alive)", "latency-p50", "ms", val, false},
		row{"small request p99 (wrk -c 1, kept alive)", "latency-p99", "ms", val, false},
	)
	for _, n := range r.Config.Streams {
		p := fmt.Sprintf("stream%d", n)
		rows = append(rows, row{fmt.Sprintf("proxy CPU per GB relayed, %d stream(s)", n), p, "CPU s/GB", cpuPerGB, false})
	}
	rows = append(rows, row{"proxy CPU per connection (rate point)", "rate", "CPU µs/conn", cpuPerConn, false})
	return rows
}

// values returns the row's values for proxy, in repeat order.
func (r *Results) values(proxy string, rw row) []float64 {
	var out []float64
	for _, m := range r.Values[proxy][rw.point] {
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

// Ratio returns median(medialb) / median(haproxy) for a point's values (0 when either
// is missing).
func (r *Results) Ratio(point Point) float64 {
	m := median(r.values(Medialb, row{point: point, value: val}))
	h := median(r.values(HAProxy, row{point: point, value: val}))
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
	fmt.Fprintf(&b, "%s. %d repeats of %s per point, proxies taking turns; each cell is the **median** (every repeat in brackets).\n",
		r.HAProxy, c.Repeats, c.Duration)
	fmt.Fprintf(&b, "Both proxies: VIP 192.168.94.100 ports 8080, 8443, %d in the lab's load-balancer namespace, source-IP persistence, "+
		"real servers HM1/HM2 on the client's port, connections from the load balancer's own address; medialb is `bin/medialb run` "+
		"(GOMAXPROCS = %d), HAProxy `haproxy -f GENERATED.cfg -db` (`mode tcp`, `balance source`, default nbthread = %d, no splicing options). "+
		"`direct` is the client talking to HM1's own address (no proxy): the ceiling of this lab.\n\n", BenchPort, numCPU(), numCPU())
	proxies := []string{}
	for _, p := range []string{Medialb, MedialbAlt, HAProxy, Direct} {
		if slices.Contains(c.Proxies, p) {
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
		fmt.Fprintf(&b, "| %s | %s |", rw.label, rw.unit)
		for _, p := range proxies {
			b.WriteString(" " + cell(r.values(p, rw)) + " |")
		}
		m, h := median(r.values(Medialb, rw)), median(r.values(HAProxy, rw))
		if m > 0 && h > 0 {
			fmt.Fprintf(&b, " %.2f |\n", m/h)
		} else {
			b.WriteString(" – |\n")
		}
	}
	var errs []string
	for _, p := range proxies {
		for _, pt := range []Point{"rate", "latency-p50"} {
			for i, m := range r.Values[p][pt] {
				if m.Errors != "" {
					errs = append(errs, fmt.Sprintf("%s %s repeat %d: %s", p, pt, i+1, m.Errors))
				}
			}
		}
	}
	b.WriteString("\n")
	if slices.Contains(proxies, MedialbAlt) {
		fmt.Fprintf(&b, "medialb-alt: %s/medialb with environment %q.\n", c.AltBinDir, c.AltEnv)
	}
	if len(errs) > 0 {
		b.WriteString("wrk reported errors: " + strings.Join(errs, "; ") + ".\n")
	} else {
		b.WriteString("wrk reported no socket errors and no non-2xx answers.\n")
	}
	goal := func(name string, ratio, want float64) {
		verdict := "met"
		if ratio < want {
			verdict = "**not met**"
		}
		fmt.Fprintf(&b, "- %s: medialb/haproxy = %.2f, goal ≥ %.1f: %s.\n", name, ratio, want, verdict)
	}
	b.WriteString("\nGoals (medians of this run):\n\n")
	for _, n := range c.Streams {
		goal(fmt.Sprintf("throughput, %d stream(s)", n), r.Ratio(fmt.Sprintf("stream%d", n)), 1.0)
	}
	goal("connection rate", r.Ratio("rate"), 0.9)
	return b.String()
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
