// Command medialb-perf measures medialb's layer-4 dataplane against the in-kernel XDP_TX
// reference in a namespace lab of its own, and writes the figures as Markdown.
//
//	medialb-perf [--out BENCHMARKS.md] [--duration 2s] [--repeats 3] [--mixes 64,512,1400,imix]
//	             [--queues 1,2] [--forwarders xdp_tx,medialb,medialb+fastpath] [--count-at switch|server]
//	             [--server-check] [--pings 1000] [--gen-cpu 0] [--fwd-cpu 1] [--batch N]
//	             [--cpuprofile FILE]
//	medialb-perf --new-clients [--duration 2s] [--repeats 3] [--per-client 8] [--window 1024] [--out BENCHMARKS.md]
//
// It needs root (namespaces, XDP, AF_XDP) and the ip, bridge, ethtool and taskset commands.
// With --out, only the part of the file between <!-- perf:begin --> and <!-- perf:end -->
// is rewritten (appended when absent); without it the section goes to stdout. SIGINT and
// SIGTERM stop the run and delete the lab. See package perf.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/medialb/medialb/perf"
	"github.com/rs/zerolog"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "medialb-perf:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("medialb-perf", flag.ContinueOnError)
	out := fs.String("out", "", "rewrite the perf section of this Markdown file (default: print it)")
	dur := fs.Duration("duration", 2*time.Second, "sending time per point")
	repeats := fs.Int("repeats", 3, "measurements of every point, forwarders taking turns")
	countAt := fs.String("count-at", perf.CountAtSwitch, "where arrivals are counted: switch (the bridge port facing the load balancer) or server (the real servers' veths)")
	serverCheck := fs.Bool("server-check", true, "with --count-at switch, also measure the 64-byte point counted at the real servers")
	batch := fs.Int("batch", 0, "medialb workers' batch size (0: the pipeline's default)")
	packets := fs.Uint64("packets", 0, "most frames per point (0: bounded by --duration only)")
	mixes := fs.String("mixes", "64,512,1400,imix", "packet-size mixes: 64, 512, 1400, imix")
	queues := fs.String("queues", "1,2", "RX queue counts of the load balancer's interface (first must be 1)")
	fwds := fs.String("forwarders", "xdp_tx,medialb,medialb+fastpath", "forwarders to compare: xdp_tx, medialb, medialb+fastpath, medialb_busypoll")
	proto := fs.String("proto", perf.ProtoMix, "frames: udp, tcp or mix")
	sources := fs.Int("sources", 1024, "distinct client source addresses")
	pings := fs.Int("pings", 1000, "UDP ping-pongs per latency path (negative: skip latency)")
	genCPU := fs.Int("gen-cpu", 0, "CPU of the generator")
	fwdCPU := fs.Int("fwd-cpu", 1, "CPU of the forwarder")
	prof := fs.String("cpuprofile", "", "write a CPU profile of the medialb 64-byte point to this file")
	verbose := fs.Bool("v", false, "log every point to stderr")
	flood := fs.Duration("flood", 0, "instead of the throughput run: spray new sources at the media ports for this long while established clients send, and report what became of them (the flood section)")
	newClients := fs.Bool("new-clients", false, "instead of the throughput run: measure new clients per second (each sends --per-client frames) against xdp_tx (the new-clients section)")
	perClient := fs.Int("per-client", 8, "with --new-clients: frames each new client sends")
	window := fs.Int("window", 1024, "with --new-clients: clients sending at a time, round robin")
	ref := fs.String("xdp-tx-ref", "", "instead of a run: attach the XDP_TX reference IFACE,DSTMAC,SRCMAC,VIP,LO-HI until SIGTERM (the VM lab's bench)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ref != "" {
		return runRef(*ref)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces, attaches XDP programs and opens AF_XDP sockets")
	}
	cfg := perf.Config{
		Duration: *dur, Repeats: *repeats, CountAt: *countAt, ServerCheck: *serverCheck, BatchSize: *batch, Packets: *packets, Proto: *proto, Sources: *sources,
		GenCPU: *genCPU, FwdCPU: *fwdCPU, LatencyPings: *pings, CPUProfile: *prof,
		Forwarders: strings.Split(*fwds, ","),
		Logger:     zerolog.Nop(),
	}
	if *verbose {
		cfg.Logger = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
	}
	known := map[string]perf.Mix{"64": perf.Mix64, "512": perf.Mix512, "1400": perf.Mix1400, "imix": perf.MixIMIX}
	for _, m := range strings.Split(*mixes, ",") {
		mix, ok := known[strings.TrimSpace(m)]
		if !ok {
			return fmt.Errorf("parse --mixes: unknown mix %q (want 64, 512, 1400 or imix)", m)
		}
		cfg.Mixes = append(cfg.Mixes, mix)
	}
	for _, q := range strings.Split(*queues, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(q))
		if err != nil || n < 1 {
			return fmt.Errorf("parse --queues: %q is not a queue count", q)
		}
		cfg.Queues = append(cfg.Queues, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *flood > 0 {
		var results []*perf.FloodResult
		for _, run := range []struct {
			rt    bool
			queue int
		}{{false, 0}, {true, 0}, {true, 4096}} {
			res, err := perf.RunFlood(ctx, perf.FloodConfig{Duration: *flood, GenCPU: *genCPU, FwdCPU: *fwdCPU, RTNAPI: run.rt,
				SwitchQueue: run.queue, Logger: cfg.Logger})
			if err != nil {
				return fmt.Errorf("flood: %w", err)
			}
			results = append(results, res)
		}
		section := perf.FloodSection(strings.TrimSpace("medialb-perf "+strings.Join(args, " ")), results...)
		if *out == "" {
			fmt.Print(section)
			return nil
		}
		return perf.UpdateFloodFile(*out, section)
	}
	if *newClients {
		fwd := []string(nil)
		if *fwds != fs.Lookup("forwarders").DefValue {
			fwd = cfg.Forwarders
		}
		res, err := perf.RunNewClients(ctx, perf.NewClientsConfig{Duration: *dur, Repeats: *repeats, PerClient: *perClient,
			Window: *window, Forwarders: fwd, GenCPU: *genCPU, FwdCPU: *fwdCPU, Logger: cfg.Logger})
		if err != nil {
			return fmt.Errorf("new clients: %w", err)
		}
		section := res.Markdown(strings.TrimSpace("medialb-perf " + strings.Join(args, " ")))
		if *out == "" {
			fmt.Print(section)
			return nil
		}
		return perf.UpdateNewClientsFile(*out, section)
	}
	res, err := perf.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	section := res.Markdown(strings.TrimSpace(os.Args[0] + " " + strings.Join(args, " ")))
	if *out == "" {
		fmt.Print(section)
		return nil
	}
	return perf.UpdateFile(*out, section)
}
