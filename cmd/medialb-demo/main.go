// Command medialb-demo is what `make demo` runs: it builds the namespace lab (clients,
// one load balancer, four simulated Harmonic VOS servers), runs bin/medialb on
// examples/harmonic-vos.yaml rewritten onto the lab, drives traffic through both VIPs,
// fails a server mid-run and brings it back, prints what happened, and tears
// everything down on exit and on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
	"github.com/medialb/medialb/perf/xdpref"
)

func main() { os.Exit(run()) }

func run() int {
	bin := flag.String("bin", "bin", "`directory` with medialb and vossim")
	cfgPath := flag.String("config", "examples/harmonic-vos.yaml", "configuration `file` to rewrite onto the lab")
	clients := flag.Int("clients", 100, "client source addresses")
	soak := flag.Duration("soak", 0, "instead of the demo's steps, run the soak test this long (make soak: 10m)")
	soakOut := flag.String("soak-out", "", "with --soak, rewrite the soak section of this `file` (BENCHMARKS.md)")
	ecmpOnly := flag.Bool("ecmp-only", false, "run only the scale-out step (BGP ECMP behind an FRR router)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "medialb-demo: needs root (network namespaces, XDP); run `sudo make demo`")
		return 1
	}
	binDir, _ := filepath.Abs(*bin)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d := &demo{ctx: ctx, bin: binDir, clients: *clients, example: *cfgPath, soak: *soak, soakOut: *soakOut}
	run := d.run
	if *ecmpOnly {
		run = d.ecmpStep
	}
	err := run()
	d.teardown()
	switch {
	case errors.Is(ctx.Err(), context.Canceled) && err != nil:
		fmt.Println("\ninterrupted; lab torn down")
		return 130
	case err != nil:
		fmt.Fprintf(os.Stderr, "\nmedialb-demo: %v\n", err)
		return 1
	}
	fmt.Println("\ndemo done; lab torn down, nothing left in the root namespace")
	return 0
}

// demo holds what one run brought up, so teardown can take it down in any state.
type demo struct {
	ctx     context.Context
	bin     string
	clients int
	example string
	soak    time.Duration
	soakOut string

	lab     *lab.Lab
	tmp     string
	medialb *lbproc.Process
	pass    *xdpref.Attachment
}

func (d *demo) run() error {
	step("1. namespace lab")
	l, err := lab.New(lab.Options{Prefix: lab.Prefix("dmo"), Clients: d.clients + freshClients})
	if err != nil {
		return err
	}
	d.lab = l
	lb := l.LBs[0]
	fmt.Printf("   switch %s (bridge %s), client %s with %d source addresses (%s..%s)\n",
		l.Switch, l.Bridge, l.Client.NS, len(l.Client.Sources4), l.Client.Sources4[0], l.Client.Sources4[len(l.Client.Sources4)-1])
	fmt.Printf("   load balancer %s: %s %s %s\n", lb.NS, lb.Link, lb.Addr4, lb.MAC)
	for _, s := range l.Servers {
		fmt.Printf("   real server %-4s %s: %s %s, VIPs %v on lo (arp_ignore=1, arp_announce=2)\n", s.Name, s.NS, s.Addr4, s.MAC, l.VIPs)
	}
	if err := l.StartVOS(filepath.Join(d.bin, "vossim")); err != nil {
		return err
	}
	fmt.Println("   simulated VOS servers up: HTTPS /admin/status, HTTP 8080, HTTPS 8443, TCP+UDP 1935, 554,", l.MediaPorts)
	// XDP_TX on a veth reaches the peer only if the peer runs an XDP program.
	if err := lab.Do(l.Switch, func() (err error) { d.pass, err = xdpref.AttachPass(lb.SwitchPort); return err }); err != nil {
		return fmt.Errorf("XDP_PASS on the switch port %s: %w", lb.SwitchPort, err)
	}
	fmt.Printf("   XDP_PASS on the switch port %s, so the load balancer's XDP_TX fast path reaches the bridge\n", lb.SwitchPort)

	step("2. configuration: " + d.example + " rewritten onto the lab")
	if d.tmp, err = os.MkdirTemp("", "medialb-demo-"); err != nil {
		return err
	}
	cfg, err := d.writeConfig()
	if err != nil {
		return err
	}
	if err := d.check(cfg); err != nil {
		return err
	}

	step("3. medialb run in " + lb.NS)
	logPath := filepath.Join(d.tmp, "medialb.log")
	fmt.Printf("   $ ip netns exec %s %s run --config %s   (log: %s)\n", lb.NS, filepath.Join(d.bin, "medialb"), cfg, logPath)
	if d.medialb, err = lbproc.Start(l, lb, filepath.Join(d.bin, "medialb"), cfg, logPath, echo); err != nil {
		return err
	}
	if err := d.medialb.WaitStarted(d.ctx, 20*time.Second); err != nil {
		return err
	}
	if err := d.waitChecked(20 * time.Second); err != nil {
		return err
	}
	if d.soak > 0 {
		if err := d.runSoak(cfg); err != nil {
			return err
		}
		return d.medialb.Stop(15 * time.Second)
	}
	if err := d.traffic(); err != nil {
		return err
	}
	if err := d.media(); err != nil {
		return err
	}
	if err := d.failover(); err != nil {
		return err
	}
	if err := d.reload(cfg); err != nil {
		return err
	}
	if err := d.feedback(); err != nil {
		return err
	}
	if err := d.arpProblem(); err != nil {
		return err
	}
	step("9. System Overview (GET /api/v1/overview; the WebUI shows the same at https://" + lb.Addr4.String() + ":9443/)")
	if err := d.printOverview(); err != nil {
		return err
	}
	step("10. shutdown (SIGTERM)")
	if err := d.medialb.Stop(15 * time.Second); err != nil {
		return fmt.Errorf("medialb exit: %w; log: %s", err, d.medialb.LogPath)
	}
	fmt.Printf("   addresses left on %s: %s\n", lb.Link, d.vipsLeft())
	return d.ecmpStep()
}

func (d *demo) teardown() {
	if d.medialb != nil {
		d.medialb.Stop(15 * time.Second)
	}
	if d.pass != nil {
		d.pass.Close()
	}
	if d.lab != nil {
		d.lab.Close()
	}
	if d.tmp != "" {
		os.RemoveAll(d.tmp)
	}
}

func step(s string) { fmt.Printf("\n== %s\n", s) }
