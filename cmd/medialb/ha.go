package main

import (
	"flag"
	"fmt"
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
	return checkPair(*path, *peer)
}
