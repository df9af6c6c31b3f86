package hub

import (
	"github.com/saltpeter/saltpeter/core/killq"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// command takes a kill or signal request from the queue and keeps it per
// target machine until the wrapper confirms it (killed) or completes.
// Machines the hub no longer knows are final: their commands are dropped.
// A lost machine keeps its commands, for its wrapper may come back.
func (h *Hub) command(r killq.Request) {
	log := h.log.With("run_id", r.RunID, "kind", r.Kind, "by", r.By)
	if r.Kind != killq.Kill && r.Kind != killq.Signal {
		log.Warn("dropping command of unknown kind")
		return
	}
	if r.Kind == killq.Signal {
		sig, ok := wire.CanonicalSignal(r.Signal)
		if !ok || sig == "SIGKILL" {
			log.Warn("dropping signal command with an unusable signal", "signal", r.Signal)
			return
		}
		r.Signal = sig
	}
	var targets []*mstate
	if r.Machine != "" {
		if st := h.machines[key{r.RunID, r.Machine}]; st != nil {
			targets = append(targets, st)
		}
	} else {
		for _, st := range h.byRun[r.RunID] {
			targets = append(targets, st)
		}
	}
	if len(targets) == 0 {
		log.Info("dropping command: no live machine", "machine", r.Machine)
		return
	}
	for _, st := range targets {
		cmd := &command{kind: r.Kind, signal: r.Signal, grace: r.Grace, by: r.By, asked: r.At}
		if r.Kind == killq.Kill {
			// The latest kill's overrides win; it goes out at once.
			st.kill = cmd
		} else {
			dup := false
			for _, s := range st.signals {
				if s.signal == cmd.signal {
					s.lastSent, dup = cmd.lastSent, true
				}
			}
			if !dup {
				st.signals = append(st.signals, cmd)
			}
		}
		log.Info("command queued for machine", "machine", st.key.machine, "signal", r.Signal,
			"grace_ms", r.Grace.Milliseconds(), "connected", st.ready)
		h.commanded[st] = struct{}{}
		h.flush(st, false)
	}
}

// flush sends the machine's pending commands that are due: all of them
// when force, else those never sent or sent ResendInterval ago.
func (h *Hub) flush(st *mstate, force bool) {
	if st.conn == nil || !st.ready || (st.kill == nil && len(st.signals) == 0) {
		return
	}
	now := h.now()
	due := func(c *command) bool {
		return force || c.lastSent.IsZero() || now.Sub(c.lastSent) >= h.cfg.ResendInterval
	}
	if c := st.kill; c != nil && due(c) {
		f := wire.Frame{Type: wire.TypeKill, JobName: st.exp.Job, JobInstance: st.key.run, Machine: st.key.machine}
		if st.connV2 {
			f.Signal = c.signal
			if c.grace > 0 {
				f.Grace = wire.FormatDuration(c.grace)
			}
		}
		if !st.conn.enqueue(f, false) {
			return
		}
		if c.lastSent.IsZero() {
			h.log.Info("kill sent", "run_id", st.key.run, "machine", st.key.machine)
		}
		c.lastSent, st.killSent = now, true
	}
	if !st.connV2 && len(st.signals) > 0 {
		h.log.Warn("dropping signal commands: a v1 wrapper has no signal command",
			"run_id", st.key.run, "machine", st.key.machine, "signals", len(st.signals))
		st.signals = nil
	}
	for _, c := range st.signals {
		if !due(c) {
			continue
		}
		f := wire.Frame{Type: wire.TypeSignal, JobName: st.exp.Job, JobInstance: st.key.run,
			Machine: st.key.machine, Signal: c.signal}
		if !st.conn.enqueue(f, false) {
			return
		}
		c.lastSent = now
	}
}

// killed clears the command a killed frame confirms: the signal command
// it names if any, else the kill, else (a v1 frame without signal) the
// oldest signal.
func (h *Hub) killed(k key, signal string) {
	st := h.machines[k]
	if st == nil {
		return
	}
	if signal != "" {
		if sig, ok := wire.CanonicalSignal(signal); ok {
			signal = sig
		}
		for i, c := range st.signals {
			if c.signal == signal && !c.lastSent.IsZero() {
				st.signals = append(st.signals[:i], st.signals[i+1:]...)
				h.log.Debug("signal confirmed", "run_id", k.run, "machine", k.machine, "signal", signal)
				return
			}
		}
	}
	switch {
	case st.kill != nil:
		// Kept for the kill's latency, measured to the machine's result.
		st.killAsked = st.kill.asked
		st.kill = nil
		h.log.Info("kill confirmed", "run_id", k.run, "machine", k.machine)
	case len(st.signals) > 0 && signal == "":
		st.signals = st.signals[1:]
	}
}
