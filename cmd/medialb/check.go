package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/ha"
)

func init() {
	register("check", "validate a configuration file", runCheck)
}

// runCheck is `medialb check --config FILE [--peer-config FILE]`: the summary
// on stdout and exit 0 for a valid file, else every problem as FILE:LINE:
// message on stderr and exit 1. FILE is read as the node runs it: on the
// secondary of an HA pair, with the virtual_services its primary pushed. With
// --peer-config, the pair must agree too (as with ha-check).
func runCheck(args []string) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `FILE` to check")
	peer := fs.String("peer-config", "", "the other HA node's configuration `FILE`: check that the pair agrees")
	online := fs.Bool("peer", false, "ask the running peer (ha.peer, through its API) whether it runs the same virtual_services")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: medialb check --config FILE [--peer-config FILE] [--peer]\n\nValidates FILE; prints a summary and exits 0 if it is valid, else prints\nevery problem as FILE:LINE: message and exits 1. On the secondary of an HA\npair, FILE's virtual_services are those its primary pushed, if any. With\n--peer-config, the two nodes' configurations must also agree; with --peer,\nthe running peer must run the same virtual_services.\n\nFlags:\n")
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
	code := 0
	if *peer != "" {
		code = checkPair(*path, *peer)
	} else {
		cfg, ok := loadReport(*path, config.LoadNode)
		if !ok {
			return 1
		}
		fmt.Fprintln(stdout, cfg.Summary())
	}
	if *online && code == 0 {
		code = checkPeer(*path)
	}
	return code
}

// checkPeer asks the running peer of the node configured in path for the
// digest of its virtual_services and compares it with this file's.
func checkPeer(path string) int {
	cfg, ok := loadReport(path, config.LoadNode)
	if !ok {
		return 1
	}
	if cfg.HA == nil {
		fmt.Fprintf(stderr, "%s: --peer: no ha section\n", path)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := ha.PeerDigest(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "%s: --peer: %v\n", path, err)
		return 1
	}
	own := config.ServicesDigest(cfg.ServicesDoc)
	switch {
	case d.Priority == int(cfg.HA.Priority):
		fmt.Fprintf(stderr, "%s: the peer %s has the same ha.priority %d (give the primary the higher one)\n", path, d.Node, d.Priority)
		return 1
	case d.Digest != own:
		fmt.Fprintf(stderr, "%s: the peer %s runs other virtual_services than this file's (digest %.12s, here %.12s); the primary pushes its own at its next reload or within %s\n",
			path, d.Node, d.Digest, own, ha.ConfigSyncInterval)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok: the peer %s (ha.priority %d) runs the same virtual_services (digest %.12s)\n", path, d.Node, d.Priority, own)
	return 0
}

// loadReport loads path with load and prints every problem on stderr.
func loadReport(path string, load func(string) (*config.Config, error)) (*config.Config, bool) {
	cfg, err := load(path)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(stderr, e.Error())
			}
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
		}
		return nil, false
	}
	return cfg, true
}

// checkPair validates this node's configuration (as the node runs it, see
// config.LoadNode) and the peer's file, and checks that they agree (see
// ha.ComparePair): exit 0 with a summary when they do, else every problem on
// stderr and exit 1.
func checkPair(path, peer string) int {
	a, okA := loadReport(path, config.LoadNode)
	b, okB := loadReport(peer, config.Load) // the peer's state_dir is not here
	if !okA || !okB {
		return 1
	}
	if diffs := ha.ComparePair(a, b); len(diffs) > 0 {
		for _, d := range diffs {
			fmt.Fprintf(stderr, "%s / %s: %s\n", path, peer, d)
		}
		return 1
	}
	src := ""
	if by := a.PushedBy(); by != "" {
		src = fmt.Sprintf("; %s runs the virtual_services pushed by %s", path, by)
	}
	fmt.Fprintf(stdout, "%s / %s: ok: the pair agrees (%d virtual services, router_id %d, priorities %d and %d%s)\n",
		path, peer, len(a.Services), a.HA.RouterID, a.HA.Priority, b.HA.Priority, src)
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
