package bgp

import (
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/rs/zerolog"
)

// logger passes GoBGP's log lines to zerolog. GoBGP logs every state change of
// a session at info; its debug lines (each message) are dropped unless the
// logger is at debug.
type logger struct{ l zerolog.Logger }

func (g logger) event(ev *zerolog.Event, msg string, fields gobgplog.Fields) {
	for k, v := range fields {
		ev = ev.Interface(k, v)
	}
	ev.Msg(msg)
}

func (g logger) Panic(msg string, f gobgplog.Fields) { g.event(g.l.Error(), msg, f) }
func (g logger) Fatal(msg string, f gobgplog.Fields) { g.event(g.l.Error(), msg, f) }
func (g logger) Error(msg string, f gobgplog.Fields) { g.event(g.l.Error(), msg, f) }
func (g logger) Warn(msg string, f gobgplog.Fields)  { g.event(g.l.Warn(), msg, f) }
func (g logger) Info(msg string, f gobgplog.Fields)  { g.event(g.l.Info(), msg, f) }
func (g logger) Debug(msg string, f gobgplog.Fields) { g.event(g.l.Debug(), msg, f) }

func (g logger) SetLevel(gobgplog.LogLevel) {}
func (g logger) GetLevel() gobgplog.LogLevel {
	if g.l.GetLevel() <= zerolog.DebugLevel {
		return gobgplog.DebugLevel
	}
	return gobgplog.InfoLevel
}
