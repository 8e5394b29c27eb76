package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/ha"
)

func init() {
	register("ha-check", "check that the two configurations of an HA pair agree", runHACheck)
}

// runHACheck is `medialb ha-check --config A --peer-config B`: both files must be
// valid and agree on everything a pair shares (see ha.ComparePair); exit 0 with
// a summary when they do, else every difference on stderr and exit 1.
func runHACheck(args []string) int {
	fs := flag.NewFlagSet("ha-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "this node's configuration `FILE`")
	peer := fs.String("peer-config", "", "the other node's configuration `FILE`")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: medialb ha-check --config FILE --peer-config FILE\n\nValidates both files and checks that the pair agrees: the same\nvirtual_services, hash seed, ha.router_id, ha.secret, ha.sync_port,\nha.advert_interval and ha.preempt, and different priorities.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *path == "" || *peer == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "medialb ha-check: --config FILE and --peer-config FILE are required")
		fs.Usage()
		return 2
	}
	var cfgs [2]*config.Config
	bad := false
	for i, p := range []string{*path, *peer} {
		cfg, err := config.Load(p)
		if err != nil {
			bad = true
			var errs config.Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					fmt.Fprintln(stderr, e.Error())
				}
			} else {
				fmt.Fprintf(stderr, "%s: %v\n", p, err)
			}
		}
		cfgs[i] = cfg
	}
	if bad {
		return 1
	}
	if diffs := ha.ComparePair(cfgs[0], cfgs[1]); len(diffs) > 0 {
		for _, d := range diffs {
			fmt.Fprintf(stderr, "%s / %s: %s\n", *path, *peer, d)
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s / %s: ok: the pair agrees (%d virtual services, router_id %d, priorities %d and %d)\n",
		*path, *peer, len(cfgs[0].Services), cfgs[0].HA.RouterID, cfgs[0].HA.Priority, cfgs[1].HA.Priority)
	return 0
}
