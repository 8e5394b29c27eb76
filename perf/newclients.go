package perf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/medialb/medialb/internal/checksum"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/medialb/medialb/afxdp"
	"github.com/rs/zerolog"
)

// NewClientsConfig configures RunNewClients: clients that were never seen before arrive
// without pause, each sends a few frames and is replaced by the next new one.
type NewClientsConfig struct {
	Duration time.Duration // sending time per point; default 2s
	Repeats  int           // measurements per forwarder, forwarders taking turns; default 3
	// PerClient is the number of frames each new client sends; its first ones go
	// through the pipeline, the rest (once the worker has recorded its server) through
	// the fast path. Default 8.
	PerClient int
	// Window is the number of clients sending at a time (round robin): a client's
	// frames are Window frames apart. Default 1024.
	Window     int
	Forwarders []string // default xdp_tx, medialb+fastpath, medialb
	GenCPU     int      // default 0
	FwdCPU     int      // default 1
	Logger     zerolog.Logger
}

func (c *NewClientsConfig) defaults() {
	if c.Duration <= 0 {
		c.Duration = 2 * time.Second
	}
	if c.Repeats <= 0 {
		c.Repeats = 3
	}
	if c.PerClient <= 0 {
		c.PerClient = 8
	}
	if c.Window <= 0 {
		c.Window = 1024
	}
	if len(c.Forwarders) == 0 {
		c.Forwarders = []string{FwdXDPTX, FwdMedialbFastpath, FwdMedialb}
	}
	if c.GenCPU == 0 && c.FwdCPU == 0 {
		c.FwdCPU = 1
	}
}

// NewClientsPoint is one measurement of one forwarder.
type NewClientsPoint struct {
	Forwarder string
	Rep       int
	Sent      uint64        // frames the generator completed
	Arrived   uint64        // frames the load balancer sent to a real server (counted at the switch)
	Elapsed   time.Duration // sending time
	FwdCPU    time.Duration // CPU time of the forwarding threads (NAPI + workers)
	Busy      float64       // busy fraction of the forwarding CPU
	FastPath  uint64        // frames the steering program forwarded itself (medialb+fastpath)
	Pipeline  uint64        // frames the pipeline forwarded
}

// Clients returns the new clients served per second: arrived frames / PerClient.
func (p NewClientsPoint) Clients(perClient int) float64 {
	return float64(p.Arrived) / float64(perClient) / p.Elapsed.Seconds()
}

// CoreClients returns the new clients per second one fully busy forwarding core would
// take: 1 s / (forwarding CPU time per client).
func (p NewClientsPoint) CoreClients(perClient int) float64 {
	if p.Arrived == 0 || p.FwdCPU <= 0 {
		return 0
	}
	return float64(p.Arrived) / float64(perClient) / p.FwdCPU.Seconds()
}

// NewClientsResult is a RunNewClients campaign.
type NewClientsResult struct {
	Config NewClientsConfig
	Start  time.Time
	Took   time.Duration
	Load   string
	Points []NewClientsPoint
}

// RunNewClients builds the lab and measures, forwarder by forwarder in turns, the rate
// of new clients each forwarder takes: the generator (one AF_XDP TX thread on GenCPU)
// sends round robin from Window clients, each sending PerClient frames to one of the
// VIP's media ports before the next never-seen address takes its slot; the forwarding
// threads run on FwdCPU; frames are counted on the switch port facing the load balancer.
func RunNewClients(ctx context.Context, cfg NewClientsConfig) (res *NewClientsResult, err error) {
	cfg.defaults()
	res = &NewClientsResult{Config: cfg, Start: time.Now().UTC(), Load: loadAvg()}
	defer func() { res.Took = time.Since(res.Start) }()
	t, err := newTopo(1)
	if err != nil {
		return nil, fmt.Errorf("build lab: %w", err)
	}
	defer func() { err = errors.Join(err, t.Close()) }()
	gen, err := NewGenerator(GenConfig{
		NS: t.client.ns, Interface: t.client.link, DstMAC: t.lb.mac, SrcMAC: t.client.mac,
		Mix: Mix64, Proto: ProtoUDP, Sources: 1, CPU: cfg.GenCPU, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, gen.Close()) }()
	ds, err := setDownstream(t, CountAtSwitch, cfg.GenCPU)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, ds.close()) }()
	var next uint32 // the next new client address, across points: never repeated
	for rep := range cfg.Repeats {
		for _, name := range cfg.Forwarders {
			f, err := startForwarder(t, name, []int{cfg.FwdCPU}, Config{Logger: cfg.Logger})
			if err != nil {
				return res, err
			}
			p, err := measureNewClients(ctx, gen, f, ds.arrived, cfg, &next)
			err = errors.Join(err, f.close())
			if err != nil {
				return res, fmt.Errorf("new clients, %s: %w", name, err)
			}
			p.Forwarder, p.Rep = name, rep
			cfg.Logger.Info().Str("forwarder", name).Int("rep", rep).Uint64("arrived", p.Arrived).
				Float64("clients_per_s", p.Clients(cfg.PerClient)).Float64("core_clients_per_s", p.CoreClients(cfg.PerClient)).
				Uint64("fastpath", p.FastPath).Uint64("pipeline", p.Pipeline).Msg("new clients point")
			res.Points = append(res.Points, p)
		}
	}
	return res, nil
}

func measureNewClients(ctx context.Context, gen *Generator, f forwarder, arrived func() (uint64, error), cfg NewClientsConfig, next *uint32) (NewClientsPoint, error) {
	var p NewClientsPoint
	// Warm-up: caches, the worker's first batches.
	if _, err := gen.newClients(ctx, cfg.Duration/10, cfg.PerClient, cfg.Window, next); err != nil {
		return p, err
	}
	time.Sleep(50 * time.Millisecond)
	tids := f.threads()
	cpu0 := sumRuntime(tids)
	a0, err := arrived()
	if err != nil {
		return p, err
	}
	var fast0, pipe0 uint64
	m, isMedialb := f.(*medialb)
	if isMedialb {
		fast0, pipe0 = m.fastForwarded(), m.counters().Forwarded()
	}
	b0, t0, _ := cpuTimes(cfg.FwdCPU)
	g, err := gen.newClients(ctx, cfg.Duration, cfg.PerClient, cfg.Window, next)
	if err != nil {
		return p, err
	}
	time.Sleep(100 * time.Millisecond)
	b1, t1, _ := cpuTimes(cfg.FwdCPU)
	a1, err := arrived()
	if err != nil {
		return p, err
	}
	p.Sent, p.Arrived, p.Elapsed = g.Sent, a1-a0, g.Elapsed
	p.FwdCPU = sumRuntime(tids) - cpu0
	if t1 > t0 {
		p.Busy = float64(b1-b0) / float64(t1-t0)
	}
	if isMedialb {
		p.FastPath, p.Pipeline = m.fastForwarded()-fast0, m.counters().Forwarded()-pipe0
	}
	return p, nil
}

// newClients sends for d, round robin over window slots, frames from new clients: a
// slot's client sends perClient frames (UDP, 64 bytes, to one port of 50000-65535),
// then the slot takes the next address from 12.0.0.0 up (*next, never repeated within
// 16 M clients). The IPv4 checksum is recomputed, the UDP one is left out (0).
func (g *Generator) newClients(ctx context.Context, d time.Duration, perClient, window int, next *uint32) (GenResult, error) {
	addr := make([]uint32, window)
	sent := make([]int, window)
	for i := range addr {
		*next++
		addr[i] = *next
	}
	tmpl := g.frames.frame(0)
	slot := 0
	always := func(uint64) int { return 64 }
	return g.sendLoop(ctx, d, always, func(descs []afxdp.Desc) {
		for j := range descs {
			if sent[slot] == perClient {
				*next++
				addr[slot], sent[slot] = *next, 0
			}
			sent[slot]++
			buf := g.sock.Frame(descs[j])
			copy(buf, tmpl)
			descs[j].Len = uint32(len(tmpl))
			ip := buf[ethLen:]
			a := addr[slot]
			binary.BigEndian.PutUint32(ip[12:], 12<<24|a&0xffffff)
			binary.BigEndian.PutUint16(ip[ipv4Len+2:], uint16(50000+a%15536))
			binary.BigEndian.PutUint16(ip[ipv4Len+6:], 0)
			ip[10], ip[11] = 0, 0
			binary.BigEndian.PutUint16(ip[10:], ^checksum.Fold(checksum.Sum(ip[:ipv4Len], 0)))
			if slot++; slot == window {
				slot = 0
			}
		}
	})
}

// Markers of the new-clients section of BENCHMARKS.md.
const (
	NewClientsBeginMarker = "<!-- newclients:begin -->"
	NewClientsEndMarker   = "<!-- newclients:end -->"
)

// UpdateNewClientsFile rewrites the new-clients section of the Markdown file at path.
func UpdateNewClientsFile(path, section string) error {
	return updateFile(path, section, NewClientsBeginMarker, NewClientsEndMarker)
}

// Markdown renders the campaign as the new-clients section, with command.
func (r *NewClientsResult) Markdown(command string) string {
	c := r.Config
	var b strings.Builder
	b.WriteString(NewClientsBeginMarker + "\n## New clients per second (layer 4)\n\n")
	fmt.Fprintf(&b, "`%s` (root), %s (took %s); nproc %d; load average at the start %s.\n\n", command,
		r.Start.Format("2006-01-02 15:04 UTC"), r.Took.Round(time.Second), runtime.NumCPU(), r.Load)
	fmt.Fprintf(&b, "Clients never seen before arrive without pause: the generator (AF_XDP TX, CPU %d) sends 64-byte UDP "+
		"frames round robin from %d clients at a time, each client %d frames (to one port of VIP:50000-65535, so "+
		"its frames are %d frames apart), then the next new address takes its slot. The forwarding threads run on "+
		"CPU %d; frames are counted on the switch port facing the load balancer. **clients/s** = arrived frames / %d "+
		"per second; **per core** = clients per second of forwarding-thread CPU time (NAPI thread + worker), the rate "+
		"one fully busy core would take. medialb+fastpath: a client's first frames go through the AF_XDP pipeline "+
		"(persistence insert, Maglev pick, fast-path map update), the rest through the steering program's XDP_TX; "+
		"medialb: every frame through the pipeline; xdp_tx: the in-kernel reference (MAC rewrite and XDP_TX for "+
		"every frame, no state).\n\n", c.GenCPU, c.Window, c.PerClient, c.Window, c.FwdCPU, c.PerClient)
	b.WriteString("| forwarder | runs | clients/s (min-max) | per core (min-max) | fwd CPU busy | frames via pipeline | per core vs xdp_tx |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|\n")
	ref := 0.0
	for _, name := range c.Forwarders {
		var cl, core, busy []float64
		var fast, pipe uint64
		for _, p := range r.Points {
			if p.Forwarder != name {
				continue
			}
			cl = append(cl, p.Clients(c.PerClient))
			core = append(core, p.CoreClients(c.PerClient))
			busy = append(busy, p.Busy)
			fast += p.FastPath
			pipe += p.Pipeline
		}
		if len(cl) == 0 {
			continue
		}
		mc := median(core)
		if name == FwdXDPTX {
			ref = mc
		}
		via := "-"
		if fast+pipe > 0 {
			via = fmt.Sprintf("%.1f %%", 100*float64(pipe)/float64(fast+pipe))
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f (%.0f-%.0f) | %.0f (%.0f-%.0f) | %.0f%% | %s | %.2f |\n", name, len(cl),
			median(cl), slices.Min(cl), slices.Max(cl), mc, slices.Min(core), slices.Max(core), 100*median(busy), via, ratio(mc, ref))
	}
	b.WriteString("\nMedians over the runs; the ratio is per-core capacity against xdp_tx's in the same run.\n")
	b.WriteString(NewClientsEndMarker + "\n")
	return b.String()
}
