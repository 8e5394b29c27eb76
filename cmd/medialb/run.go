package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/daemon"
)

func init() {
	register("run", "run the load balancer in the foreground (SIGHUP reloads)", cmdRun)
}

// cmdRun runs the load balancer until SIGINT or SIGTERM; SIGHUP reloads the file.
func cmdRun(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("config", "", "configuration `file` (YAML)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: medialb run --config FILE")
		return 2
	}
	log := logger()
	// Signals are caught before anything is brought up, so an early SIGTERM still
	// tears down what Start did.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	d, err := daemon.Start(*path, log, daemon.WithLogs(logRing))
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, l := range errs.Lines() {
				fmt.Fprintln(stderr, l)
			}
		}
		log.Error().Err(err).Str("config", *path).Msg("medialb did not start")
		return 1
	}
	for s := range sigs {
		if s == syscall.SIGHUP {
			if err := d.Reload(); err != nil {
				var errs config.Errors
				if errors.As(err, &errs) {
					for _, l := range errs.Lines() {
						log.Error().Str("problem", l).Msg("reload refused: invalid configuration")
					}
				}
				log.Error().Err(err).Msg("reload refused; running configuration kept")
			} else {
				log.Info().Msg("reload done")
			}
			continue
		}
		log.Info().Str("signal", s.String()).Msg("shutting down")
		break
	}
	signal.Stop(sigs)
	if err := d.Close(); err != nil {
		log.Error().Err(err).Msg("shutdown left something behind")
		return 1
	}
	log.Info().Msg("stopped; interface left as it was")
	return 0
}
