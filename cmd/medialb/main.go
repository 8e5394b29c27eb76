// Command medialb is a load balancer for Harmonic VOS media clusters: a
// layer-7 SNAT TCP proxy and a layer-4 direct-routing dataplane on AF_XDP.
//
// Usage:
//
//	medialb [--log-format json|console] [--log-level LEVEL] COMMAND [flags]
//
// Run `medialb help` for the commands. Each command lives in its own file and
// registers itself in init with register.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is a subcommand: `medialb NAME ...`.
type command struct {
	name    string
	summary string
	run     func(args []string) int
}

var commands = map[string]*command{}

// register adds a subcommand. run gets the arguments after the command name
// (global flags removed) and returns the exit status: 0 success, 1 failure,
// 2 usage error. Call it from init.
func register(name, summary string, run func(args []string) int) {
	if _, dup := commands[name]; dup {
		panic("medialb: command registered twice: " + name)
	}
	commands[name] = &command{name: name, summary: summary, run: run}
}

// Where commands read and write; tests replace them.
var (
	stdin  io.Reader = os.Stdin
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

// Global flags, usable before or after the command name. Commands read them
// or call logger(), set up from them before a command runs.
var (
	logFormat = "json"
	logLevel  = "info"
)

func main() {
	os.Exit(medialb(os.Args[1:]))
}

// medialb runs the command line args (without the program name) and returns
// the exit status.
func medialb(args []string) int {
	rest, err := globalFlags(args)
	if err != nil {
		fmt.Fprintf(stderr, "medialb: %v\n\n", err)
		usage(stderr)
		return 2
	}
	if err := checkLogFlags(logFormat, logLevel); err != nil {
		fmt.Fprintf(stderr, "medialb: %v\n", err)
		return 2
	}
	cmdLogger = newLoggerTo(stderr, logFormat, logLevel)

	if len(rest) == 0 {
		usage(stderr)
		return 2
	}
	name := rest[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 1 {
			if c, ok := commands[rest[1]]; ok {
				return c.run([]string{"--help"})
			}
		}
		usage(stdout)
		return 0
	}
	c, ok := commands[name]
	if !ok {
		msg := fmt.Sprintf("medialb: unknown command %q", name)
		if strings.HasPrefix(name, "-") {
			msg = fmt.Sprintf("medialb: unknown flag %q", name)
		} else if s := suggestCommand(name); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		fmt.Fprintf(stderr, "%s\n\n", msg)
		usage(stderr)
		return 2
	}
	return c.run(rest[1:])
}

// globalFlags sets the global flags found anywhere in args (up to a "--")
// and returns the other arguments.
func globalFlags(args []string) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || (name != "log-format" && name != "log-level") {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			value = args[i]
		}
		if name == "log-format" {
			logFormat = value
		} else {
			logLevel = value
		}
	}
	return rest, nil
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `usage: medialb [--log-format json|console] [--log-level LEVEL] COMMAND [flags]

A load balancer for Harmonic VOS media clusters.

Commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, `
Global flags (before or after the command):
  --log-format json|console   log format on stderr (default json)
  --log-level LEVEL           trace, debug, info, warn, error (default info)

Run 'medialb COMMAND --help' for a command's flags.
`)
}

func suggestCommand(name string) string {
	for n := range commands {
		if strings.HasPrefix(n, name) || strings.HasPrefix(name, n) {
			return n
		}
	}
	return ""
}
