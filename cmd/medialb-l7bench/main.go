// Command medialb-l7bench compares medialb's layer-7 SNAT proxy (bin/medialb) with
// HAProxy (mode tcp, balance source) in a namespace lab of its own, and writes the
// figures as Markdown.
//
//	medialb-l7bench [--bin bin] [--out BENCHMARKS.md] [--duration 3s] [--repeats 3]
//	                [--streams 1] [--downloads 4] [--rate-conns 32] [--proxies medialb,haproxy,direct]
//	                [--setups two-vip,two-vip:pinned,l7-only,l7-only:pinned] [--pin-cpu N]
//	                [--haproxy haproxy] [--alt-bin DIR] [--alt-env NAME=VALUE,...]
//	                [--profile DIR [--profile-downloads]] [-v]
//
// The proxy medialb-alt is a second medialb (another build, --alt-bin, or the same one
// with another environment, --alt-env) measured in the same run, to weigh a change.
//
// It needs root (network namespaces) and the ip, iperf3, wrk and haproxy commands
// (make deps-bench). With --out, only the part of the file between
// <!-- l7bench:begin --> and <!-- l7bench:end --> is rewritten (the section
// "## l7 vs HAProxy (lab)" is appended when absent); without it the figures go to
// stdout. SIGINT and SIGTERM stop the run and delete the lab. See package
// perf/l7bench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/perf/l7bench"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "medialb-l7bench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("medialb-l7bench", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory with the medialb and vossim binaries (make build)")
	out := fs.String("out", "", "rewrite the l7bench part of this Markdown file (default: print it)")
	dur := fs.Duration("duration", 3*time.Second, "length of each point")
	repeats := fs.Int("repeats", 3, "measurements of every point per proxy, proxies taking turns")
	streams := fs.String("streams", "1", "iperf3 parallel stream counts, client to server")
	downloads := fs.String("downloads", "4", "iperf3 -R parallel stream counts, server to client")
	setups := fs.String("setups", "two-vip,two-vip:pinned,l7-only,l7-only:pinned",
		"medialb configurations (two-vip: layer 4 beside layer 7, XDP attached; l7-only), :pinned = each proxy on one CPU")
	pinCPU := fs.Int("pin-cpu", 0, "the CPU of pinned setups (default the last one)")
	profile := fs.String("profile", "", "directory for perf record -g profiles of each proxy during the first connection-rate point of each setup")
	profileDownloads := fs.Bool("profile-downloads", false, "with --profile: also a system-wide perf record -a -g of each download point (perf report --pid PID for the proxy's share)")
	rateConns := fs.Int("rate-conns", 32, "concurrent wrk connections of the connection-rate point")
	proxies := fs.String("proxies", "medialb,haproxy,direct", "what to measure: medialb, haproxy, direct (no proxy), medialb-alt")
	haproxy := fs.String("haproxy", "haproxy", "the haproxy binary")
	altBin := fs.String("alt-bin", "", "directory of the medialb binary of the proxy medialb-alt (default --bin)")
	altEnv := fs.String("alt-env", "", "comma-separated NAME=VALUE settings for medialb-alt's environment")
	verbose := fs.Bool("v", false, "log every point to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces")
	}
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	cfg := l7bench.Config{
		BinDir: binDir, HAProxy: *haproxy, Duration: *dur, Repeats: *repeats,
		RateConns: *rateConns, Proxies: strings.Split(*proxies, ","), Logger: zerolog.Nop(),
	}
	if cfg.Streams, err = counts("streams", *streams); err != nil {
		return err
	}
	if cfg.Downloads, err = counts("downloads", *downloads); err != nil {
		return err
	}
	for _, s := range strings.Split(*setups, ",") {
		name, pin, _ := strings.Cut(strings.TrimSpace(s), ":")
		if (name != l7bench.TwoVIP && name != l7bench.TwoVIPGeneric && name != l7bench.L7Only) || (pin != "" && pin != "pinned") {
			return fmt.Errorf("parse --setups: %q: want two-vip, two-vip-generic or l7-only, optionally with :pinned", s)
		}
		cfg.Setups = append(cfg.Setups, l7bench.Setup{Scenario: name, Pinned: pin == "pinned"})
	}
	cfg.PinCPU = *pinCPU
	cfg.ProfileDir = *profile
	cfg.ProfileDownloads = *profileDownloads
	if *profile != "" {
		// perf comes with make deps-bench (linux-perf); without it every profile would be
		// silently missing.
		if _, err := exec.LookPath("perf"); err != nil {
			return fmt.Errorf("--profile needs perf: run make deps-bench (Debian package linux-perf): %w", err)
		}
	}
	if *altBin != "" {
		if cfg.AltBinDir, err = filepath.Abs(*altBin); err != nil {
			return err
		}
	}
	if *altEnv != "" {
		cfg.AltEnv = strings.Split(*altEnv, ",")
	}
	if *verbose {
		cfg.Logger = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := l7bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	command := "go run ./cmd/medialb-l7bench " + strings.Join(args, " ")
	md := res.Markdown(strings.TrimSpace(command))
	if *out == "" {
		fmt.Print(md)
		return nil
	}
	return l7bench.UpdateFile(*out, md)
}

// counts parses a comma-separated list of iperf3 stream counts.
func counts(flag, list string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 128 {
			return nil, fmt.Errorf("parse --%s: %q is not a stream count (1..128)", flag, s)
		}
		out = append(out, n)
	}
	return out, nil
}
