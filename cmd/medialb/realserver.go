package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/netif"
	"github.com/medialb/medialb/realserver"
)

func init() {
	register("realserver-check", "find the direct-routing ARP problem on the real servers", runRealServerCheck)
	register("realserver-setup", "print each direct-routing real server's setup", runRealServerSetup)
}

// runRealServerCheck is `medialb realserver-check --config FILE`: from the
// load balancer, beside or instead of a running medialb, it asks who has
// each direct-routing VIP and each real server's address and sends each real
// server a probe to the VIP with its MAC as destination; one line per real
// server (service, name, address, "ok" or the problems with their fixes);
// exit 1 when any has a problem.
func runRealServerCheck(args []string) int {
	fs := flag.NewFlagSet("realserver-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `FILE`")
	wait := fs.Duration("wait", time.Second, "how long to wait for answers, twice (ARP/ND, then the probes)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: medialb realserver-check --config FILE [--wait 1s]\n\nChecks, from this load balancer's node.interface, that every real server of a\ndirect-routing virtual service holds the VIP on a non-ARPing loopback: it\nmust answer a probe sent to the VIP with its MAC as destination, and must not\nanswer ARP (IPv6: neighbour solicitations) for the VIP. Prints one line per\nreal server and exits 1 when any has a problem. Needs CAP_NET_RAW.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	cfg, code, ok := configFlag(fs, args, path)
	if !ok {
		return code
	}
	targets := realserver.Targets(cfg)
	if len(targets) == 0 {
		fmt.Fprintf(stdout, "%s: no direct-routing virtual service: nothing to check\n", cfg.File)
		return 0
	}
	opt, err := realserver.OptionsFor(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "medialb realserver-check:", err)
		return 1
	}
	opt.Wait = *wait
	link, err := netif.OpenPacket(cfg.Node.Interface)
	if err != nil {
		fmt.Fprintln(stderr, "medialb realserver-check:", err)
		return 1
	}
	defer link.Close()
	rep, err := realserver.Check(link, targets, opt)
	if err != nil {
		fmt.Fprintln(stderr, "medialb realserver-check:", err)
		return 1
	}
	bad, err := realserver.WriteReport(stdout, rep)
	if err != nil || bad > 0 {
		return 1
	}
	return 0
}

// runRealServerSetup is `medialb realserver-setup --config FILE --os linux|windows`.
func runRealServerSetup(args []string) int {
	fs := flag.NewFlagSet("realserver-setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `FILE`")
	osName := fs.String("os", "linux", "the real servers' system: linux or windows")
	tunnel := fs.Bool("tunnel", false, "print only the setup of the tunnelled real servers (forwarding: tunnel)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: medialb realserver-setup --config FILE [--os linux|windows] [--tunnel]\n\nPrints, for each real server of a direct-routing virtual service, the commands\nthat hold its VIPs on a non-ARPing loopback (Linux: lo, arp_ignore=1,\narp_announce=2; Windows: the loopback adapter and the weak host model), then,\nfor each real server of a tunnel virtual service, the tunnel device that\ndecapsulates IPIP/GUE with the VIPs on it and rp_filter off.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	cfg, code, ok := configFlag(fs, args, path)
	if !ok {
		return code
	}
	if err := realServerSetup(cfg, *osName, *tunnel); err != nil {
		fmt.Fprintln(stderr, "medialb realserver-setup:", err)
		return 2
	}
	return 0
}

// configFlag parses a command's flags and loads --config; ok is false when
// the command is done with code.
func configFlag(fs *flag.FlagSet, args []string, path *string) (*config.Config, int, bool) {
	if code, done := parseFlags(fs, args); done {
		return nil, code, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "medialb %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return nil, 2, false
	}
	if *path == "" {
		fmt.Fprintf(stderr, "medialb %s: --config FILE is required\n", fs.Name())
		fs.Usage()
		return nil, 2, false
	}
	cfg, ok := loadReport(*path, config.LoadNode)
	if !ok {
		return nil, 1, false
	}
	return cfg, 0, true
}

// realServerSetup prints the direct-routing servers' setup (unless only the
// tunnelled ones are asked for) and the tunnelled servers' setup (when there are
// any, or when asked for).
func realServerSetup(cfg *config.Config, osName string, onlyTunnel bool) error {
	hasTunnel := false
	for _, s := range cfg.Services {
		hasTunnel = hasTunnel || s.Tunnels()
	}
	if !onlyTunnel {
		if err := realserver.Setup(stdout, cfg, osName); err != nil {
			return err
		}
		if !hasTunnel {
			return nil
		}
		fmt.Fprintln(stdout)
	}
	return realserver.SetupTunnel(stdout, cfg, osName)
}
