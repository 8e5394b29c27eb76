package perf

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/medialb/medialb/afxdp"
	"github.com/rs/zerolog"
)

// GenConfig configures a Generator.
type GenConfig struct {
	NS, Interface  string           // where to send: an interface in a namespace
	DstMAC, SrcMAC net.HardwareAddr // Ethernet addresses of the frames
	Mix            Mix
	Proto          string // ProtoUDP, ProtoTCP or ProtoMix
	Sources        int    // distinct source addresses, from 10.201.16.1 (or Src)
	// Src, when valid, is the first source address instead of 10.201.16.1; Dst,
	// when valid, the destination of every frame instead of the perf lab's VIP
	// and ports (IPv4 only), for labs other than perf's own.
	Src    netip.Addr
	Dst    netip.AddrPort
	CPU    int // CPU the sending thread is pinned to; -1: not pinned
	Logger zerolog.Logger
}

// Generator sends prebuilt frames as fast as it can through an AF_XDP socket's TX ring
// (copy mode on veth: the kernel turns each frame into an sk_buff and transmits it
// inside sendto). It is not safe for concurrent use.
type Generator struct {
	cfg    GenConfig
	dp     *afxdp.Dataplane
	sock   *afxdp.Socket
	frames *frameSet
	sets   map[string]*frameSet // by Mix.Name
}

// GenResult is what one Generator.Send did.
type GenResult struct {
	Sent     uint64        // frames the kernel completed (put on the wire)
	Elapsed  time.Duration // from the first to the last transmit
	CPU      time.Duration // CPU time of the sending thread
	TxErrors uint64        // sendto errors
}

// NewGenerator opens an AF_XDP socket on queue 0 of cfg.Interface (the steering program
// it attaches steers nothing: the socket only transmits) and prebuilds the frames.
func NewGenerator(cfg GenConfig) (*Generator, error) {
	if cfg.Sources <= 0 {
		cfg.Sources = 1024
	}
	switch cfg.Proto {
	case "":
		cfg.Proto = ProtoMix
	case ProtoUDP, ProtoTCP, ProtoMix:
	default:
		return nil, fmt.Errorf("open generator: protocol %q: want %s, %s or %s", cfg.Proto, ProtoUDP, ProtoTCP, ProtoMix)
	}
	n := 4096
	if n < cfg.Sources {
		n = cfg.Sources
	}
	fs, err := buildFrames(n, cfg.Sources, cfg.Mix, cfg.Proto, cfg.DstMAC, cfg.SrcMAC, cfg.Src, cfg.Dst)
	if err != nil {
		return nil, err
	}
	g := &Generator{cfg: cfg, frames: fs}
	g.sets = map[string]*frameSet{cfg.Mix.Name: fs}
	err = inNS(cfg.NS, func() error {
		g.dp, err = afxdp.Open(afxdp.Config{
			Interface: cfg.Interface, Queues: 1, NumFrames: 8192, RingSize: 2048,
			XDPMode: afxdp.ModeNative, Logger: cfg.Logger,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open generator socket: %w", err)
	}
	g.sock = g.dp.Sockets()[0]
	return g, nil
}

// Send transmits up to packets frames (0: no limit) until d has passed or ctx is done,
// on a thread pinned to the configured CPU, and waits briefly for the last completions.
func (g *Generator) Send(ctx context.Context, packets uint64, d time.Duration) (GenResult, error) {
	fs := g.frames
	next := 0
	limit := func(queued uint64) int {
		if packets == 0 {
			return 64
		}
		return int(min(packets-queued, 64))
	}
	return g.sendLoop(ctx, d, limit, func(descs []afxdp.Desc) {
		for j := range descs {
			f := fs.frame(next)
			copy(g.sock.Frame(descs[j]), f)
			descs[j].Len = uint32(len(f))
			if next++; next == len(fs.sizes) {
				next = 0
			}
		}
	})
}

// complete lets the kernel complete what is on the TX ring (queued frames since the
// stats before), waiting up to 100 ms, and returns the socket's stats then.
func (g *Generator) complete(before afxdp.Stats, queued uint64) afxdp.Stats {
	for range 100 {
		if s := g.sock.Stats(); s.TxCompleted-before.TxCompleted >= queued {
			break
		}
		g.sock.Transmit(nil)
		time.Sleep(time.Millisecond)
	}
	return g.sock.Stats()
}

// SetMix makes the generator send mix from now on.
func (g *Generator) SetMix(mix Mix) error {
	if fs, ok := g.sets[mix.Name]; ok {
		g.frames = fs
		return nil
	}
	fs, err := buildFrames(len(g.frames.sizes), g.cfg.Sources, mix, g.cfg.Proto, g.cfg.DstMAC, g.cfg.SrcMAC, g.cfg.Src, g.cfg.Dst)
	if err != nil {
		return err
	}
	g.sets[mix.Name] = fs
	g.frames = fs
	return nil
}

// Close closes the socket and detaches the program.
func (g *Generator) Close() error { return g.dp.Close() }
