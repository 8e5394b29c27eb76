package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/medialb/medialb/config"
)

func init() {
	register("check", "validate a configuration file", runCheck)
}

// runCheck is `medialb check --config FILE`: the summary on stdout and exit 0
// for a valid file, else every problem as FILE:LINE: message on stderr and exit 1.
func runCheck(args []string) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `FILE` to check")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: medialb check --config FILE\n\nValidates FILE; prints a summary and exits 0 if it is valid, else prints\nevery problem as FILE:LINE: message and exits 1.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *path == "" && fs.NArg() == 1 {
		*path = fs.Arg(0) // `medialb check FILE` works too
	} else if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "medialb check: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "medialb check: --config FILE is required")
		fs.Usage()
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(stderr, e.Error())
			}
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", *path, err)
		}
		return 1
	}
	fmt.Fprintln(stdout, cfg.Summary())
	return 0
}

// parseFlags parses a command's flags. done is true when the command should
// return code at once: 0 after --help, 2 after a usage error.
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	return 0, false
}
