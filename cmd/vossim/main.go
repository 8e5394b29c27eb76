// Command vossim simulates a Harmonic VOS real server for the namespace lab.
//
// It serves HTTP (default :8080) and HTTPS (default :8443, self-signed certificate made at
// start) with GET /admin/status answering according to a mode switchable at run time
// (healthy, unhealthy, hang, slow, garbage) and every other path answering
// "server=NAME client=IP:PORT\n"; TCP and UDP media listeners on 1935, 554 and the ports
// of --media-ports (none at all with --no-media, leaving them to real media servers),
// answering each line or datagram with the same line (UDP replies leave from the address
// the datagram was sent to); and a control listener (default :9901):
//
//	POST /status?mode=healthy|unhealthy|hang|slow|garbage
//	GET  /status
//	GET  /stats           JSON: per "proto/port", per client address: packets, bytes, conns
//	POST /stats/reset
//	POST /agent?answer=TEXT  the load-feedback agent's answer (--agent, default :3333,
//	                         and GET /load on HTTP and HTTPS): "90%", "drain", "up 50%"
//	GET  /agent
//
// SIGTERM or SIGINT shuts it down gracefully. See package lab/vos for the details.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/medialb/medialb/lab/vos"
	"github.com/rs/zerolog"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "vossim:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("vossim", flag.ContinueOnError)
	name := fs.String("name", "vossim", "server name reported in every answer (e.g. HM1)")
	httpAddr := fs.String("http", ":8080", "plain HTTP listen address (empty: off)")
	httpsAddr := fs.String("https", ":8443", "HTTPS listen address (empty: off)")
	control := fs.String("control", ":9901", "control listen address")
	media := fs.String("media-ports", "", "comma-separated extra TCP+UDP media ports, besides 1935 and 554")
	noMedia := fs.Bool("no-media", false, "serve no media port at all (neither 1935, 554 nor --media-ports): real media servers take them")
	mode := fs.String("mode", string(vos.Healthy), "initial /admin/status mode")
	agent := fs.String("agent", ":3333", "load-feedback agent listen address (empty: off); answers like HAProxy's agent-check")
	agentAnswer := fs.String("agent-answer", vos.DefaultAgentAnswer, "the agent's initial answer, e.g. 10% or drain")
	logFormat := fs.String("log-format", "json", "log format: json or console")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ports, err := parsePorts(*media)
	if err != nil {
		return err
	}
	if *noMedia {
		ports = nil
	}
	m, err := vos.ParseMode(*mode)
	if err != nil {
		return err
	}
	var log zerolog.Logger
	switch *logFormat {
	case "json":
		log = zerolog.New(os.Stderr).With().Timestamp().Logger()
	case "console":
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
	default:
		return fmt.Errorf("unknown --log-format %q (json or console)", *logFormat)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv, err := vos.Start(vos.Config{
		Name: *name, HTTP: *httpAddr, HTTPS: *httpsAddr, Control: *control,
		MediaPorts: ports, Mode: m, Agent: *agent, Logger: log,
	})
	if err != nil {
		return err
	}
	if err := srv.SetAgentAnswer(*agentAnswer); err != nil {
		srv.Shutdown(context.Background()) //nolint:errcheck // already failing
		return fmt.Errorf("--agent-answer: %w", err)
	}
	log.Info().Str("server", *name).Uints16("media_ports", ports).Str("control", *control).Msg("vossim ready")
	<-ctx.Done()
	log.Info().Str("server", *name).Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// parsePorts returns 1935, 554 and the ports in the comma-separated list s, without repeats.
func parsePorts(s string) ([]uint16, error) {
	ports := []uint16{1935, 554}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := strconv.ParseUint(f, 10, 16)
		if err != nil || p == 0 {
			return nil, errors.New("parse --media-ports: " + strconv.Quote(f) + " is not a port 1-65535")
		}
		if !slices.Contains(ports, uint16(p)) {
			ports = append(ports, uint16(p))
		}
	}
	return ports, nil
}
