package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

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
	// tears down what Start did. SIGINT/SIGTERM and SIGHUP have channels of their
	// own: a burst of SIGHUPs (which coalesce into one pending reload) can never
	// fill the channel a SIGTERM needs, and a pending SIGTERM goes before a reload.
	term := make(chan os.Signal, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGINT, syscall.SIGTERM)
	signal.Notify(hup, syscall.SIGHUP)
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
	s := waitSignal(term, hup, func() { reload(d, log) })
	log.Info().Str("signal", s.String()).Msg("shutting down")
	// Signals stay caught until Close is done: a second SIGTERM (a service manager
	// or script repeating itself) must not kill medialb before its VIPs are down.
	done := make(chan struct{})
	go ignoreDuringShutdown(term, hup, done, log)
	err = d.Close()
	close(done)
	signal.Stop(term)
	signal.Stop(hup)
	if err != nil {
		log.Error().Err(err).Msg("shutdown left something behind")
		return 1
	}
	log.Info().Msg("stopped; interface left as it was")
	return 0
}

// waitSignal runs onHUP for every SIGHUP until SIGINT or SIGTERM arrives, and
// returns that signal. A SIGTERM waiting beside a SIGHUP wins.
func waitSignal(term, hup <-chan os.Signal, onHUP func()) os.Signal {
	for {
		select {
		case s := <-term:
			return s
		case <-hup:
			select {
			case s := <-term:
				return s
			default:
			}
			onHUP()
		}
	}
}

// reload reloads the file on SIGHUP and logs the outcome.
func reload(d *daemon.Daemon, log zerolog.Logger) {
	if err := d.Reload(); err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, l := range errs.Lines() {
				log.Error().Str("problem", l).Msg("reload refused: invalid configuration")
			}
		}
		log.Error().Err(err).Msg("reload refused; running configuration kept")
		return
	}
	log.Info().Msg("reload done")
}

// ignoreDuringShutdown takes the signals that arrive while medialb shuts down, so
// that they do not end the process before its shutdown is done, and logs them.
func ignoreDuringShutdown(term, hup <-chan os.Signal, done <-chan struct{}, log zerolog.Logger) {
	for {
		select {
		case s := <-term:
			log.Info().Str("signal", s.String()).Msg("already shutting down")
		case <-hup:
			log.Info().Msg("SIGHUP ignored: shutting down")
		case <-done:
			return
		}
	}
}
