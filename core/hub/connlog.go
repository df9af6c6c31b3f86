package hub

import (
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// connLog is a connection's logger: the hub's, with the fields that say
// which connection (remote_addr, and run_id and machine once known) added
// to a record as it is written. hclog's With makes a logger of its own,
// a few hundred bytes that a connection would keep all its life, and a
// connection would make three (at the upgrade, for the bind, once bound),
// where most connections write nothing at the default level.
type connLog struct {
	base   hclog.Logger
	fields atomic.Pointer[logFields] // replaced whole, never changed in place
}

// logFields are a connection's fields; run and machine are empty until
// a frame names them.
type logFields struct{ remote, run, machine string }

func newConnLog(base hclog.Logger, remote string) *connLog {
	l := &connLog{base: base}
	l.fields.Store(&logFields{remote: remote})
	return l
}

// naming is a logger for the connection's records about run and machine.
func (l *connLog) naming(run, machine string) *connLog {
	n := &connLog{base: l.base}
	n.fields.Store(&logFields{remote: l.fields.Load().remote, run: run, machine: machine})
	return n
}

// bound names the run and machine in the connection's records from now
// on; the connection's other goroutines may be logging meanwhile.
func (l *connLog) bound(run, machine string) {
	l.fields.Store(&logFields{remote: l.fields.Load().remote, run: run, machine: machine})
}

func (l *connLog) Debug(msg string, args ...any) {
	if l.base.IsDebug() {
		l.base.Debug(msg, l.args(args)...)
	}
}

func (l *connLog) Info(msg string, args ...any) {
	if l.base.IsInfo() {
		l.base.Info(msg, l.args(args)...)
	}
}

func (l *connLog) Warn(msg string, args ...any) {
	if l.base.IsWarn() {
		l.base.Warn(msg, l.args(args)...)
	}
}

func (l *connLog) Error(msg string, args ...any) {
	if l.base.IsError() {
		l.base.Error(msg, l.args(args)...)
	}
}

// args puts the connection's fields before a record's own, where With
// would have put them.
func (l *connLog) args(own []any) []any {
	f := l.fields.Load()
	out := make([]any, 0, 6+len(own))
	out = append(out, "remote_addr", f.remote)
	if f.run != "" || f.machine != "" {
		out = append(out, "run_id", f.run, "machine", f.machine)
	}
	return append(out, own...)
}
