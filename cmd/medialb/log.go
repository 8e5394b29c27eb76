package main

import (
	"github.com/medialb/medialb/internal/logring"

	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// cmdLogger is the command's logger, set up from the global flags before a
// command runs.
var cmdLogger = zerolog.Nop()

// logger returns the logger configured by --log-format and --log-level.
func logger() zerolog.Logger { return cmdLogger }

// checkLogFlags reports whether the --log-format and --log-level values are valid.
func checkLogFlags(format, level string) error {
	if format != "json" && format != "console" {
		return fmt.Errorf("--log-format %q: want json or console", format)
	}
	if _, err := zerolog.ParseLevel(level); err != nil || level == "" {
		return fmt.Errorf("--log-level %q: want trace, debug, info, warn, error, fatal, panic or disabled", level)
	}
	return nil
}

// newLogger returns a logger writing to stderr: JSON lines, or colourless
// human-readable lines with format "console", at level and above. Invalid
// values fall back to json and info (check them with checkLogFlags first).
// logRing keeps the last lines every command's logger wrote, for `run`'s WebUI.
var logRing = logring.New(logring.DefaultLines)

func newLogger(format, level string) zerolog.Logger {
	return newLoggerTo(os.Stderr, format, level)
}

func newLoggerTo(w io.Writer, format, level string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: true}
	}
	// The WebUI's Logs page reads the same lines, as JSON, from logRing.
	w = zerolog.MultiLevelWriter(w, logRing)
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}
