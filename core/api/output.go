package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// outputChunk bounds one store read, so that a large output is streamed
// rather than held in memory whole.
const outputChunk = 1 << 20

// followBuffer is a follower's event buffer. A follower that falls behind
// re-reads the store, so this only has to absorb a burst.
const followBuffer = 64

var outputStreams = map[string]bool{"": true, "stdout": true, "stderr": true, "system": true}

// output serves a machine's stored output as raw bytes, and with follow=1
// keeps serving it until the machine's result is final.
func (a *API) output(w http.ResponseWriter, r *http.Request) {
	id, m := r.PathValue("id"), r.PathValue("machine")
	q := r.URL.Query()
	stream := q.Get("stream")
	if !outputStreams[stream] {
		a.writeError(w, badParam("stream", stream, "want stdout, stderr or system (or none for every stream)"))
		return
	}
	var offset int64
	if v := q.Get("offset"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			a.writeError(w, badParam("offset", v, "want a byte offset from 0"))
			return
		}
		offset = n
	}
	var follow bool
	switch v := q.Get("follow"); v {
	case "", "0", "false":
	case "1", "true":
		follow = r.Method != http.MethodHead
	default:
		a.writeError(w, badParam("follow", v, "want 1 or 0"))
		return
	}

	// Subscribe before the first look at the store: whatever is stored
	// after the look then has an event waiting.
	var sub *events.Subscription
	cancel := func() {}
	if follow {
		sub, cancel = a.bus.Subscribe(followBuffer)
	}
	defer func() { cancel() }()

	status, err := a.machineStatus(r.Context(), id, m)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	o := &outputWriter{api: a, w: w, r: r, q: store.OutputQuery{RunID: id, Machine: m, Stream: stream, Offset: offset}}
	if !follow {
		if err := o.copy(); err != nil {
			o.failed(err)
			return
		}
		o.finish()
		return
	}
	for {
		// The status is read before the output: if it was final then,
		// everything the machine will write is already stored.
		final := store.Final(status)
		if err := o.copy(); err != nil {
			o.failed(err)
			return
		}
		if final {
			o.finish()
			return
		}
		if !a.awaitOutput(r.Context(), &sub, &cancel, id, m) {
			return
		}
		if status, err = a.machineStatus(r.Context(), id, m); err != nil {
			o.failed(err)
			return
		}
	}
}

// awaitOutput waits for a change to the machine. It returns false when the
// client has gone.
func (a *API) awaitOutput(ctx context.Context, sub **events.Subscription, cancel *func(), id, m string) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-(*sub).Lost:
			// Events were dropped; a fresh subscription and a re-read
			// cover whatever they said.
			(*cancel)()
			*sub, *cancel = a.bus.Subscribe(followBuffer)
			return true
		case e := <-(*sub).C:
			if !concerns(e, id, m) {
				continue
			}
			// One re-read covers every event already queued.
		drain:
			for {
				select {
				case <-(*sub).C:
				default:
					break drain
				}
			}
			return true
		}
	}
}

// concerns reports whether an event may change what a follower of one
// machine's output sees.
func concerns(e events.Event, id, m string) bool {
	if e.RunID != id || (e.Machine != "" && e.Machine != m) {
		return false
	}
	switch e.Kind {
	case events.Output, events.MachineUpdated, events.RunUpdated:
		return true
	}
	return false
}

// machineStatus checks that the run and machine exist and returns the
// machine's status.
func (a *API) machineStatus(ctx context.Context, id, m string) (string, error) {
	run, err := a.store.GetRun(ctx, id)
	if err != nil {
		return "", runErr(id, err)
	}
	for _, mm := range run.Machines {
		if mm.Machine == m {
			return mm.Status, nil
		}
	}
	return "", errorf(http.StatusNotFound, CodeMachineNotFound, "Run %q has no machine %q.", id, m)
}

// outputWriter streams stored output, writing the header only once the
// first read succeeded so that an early failure is still a JSON error.
type outputWriter struct {
	api     *API
	w       http.ResponseWriter
	r       *http.Request
	q       store.OutputQuery
	started bool
}

func (o *outputWriter) start(total int64) {
	if o.started {
		return
	}
	o.started = true
	h := o.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	// The selection's size at the first read, dropped bytes included.
	h.Set("X-Output-Total", strconv.FormatInt(total, 10))
	// Where to continue from comes at the end, as a trailer: the body
	// may hold more than was stored at the first read, and a marker of
	// dropped output in place of many bytes, so neither the total nor
	// the offset plus the body's length says it.
	h.Set("Trailer", "X-Output-Next")
	o.w.WriteHeader(http.StatusOK)
}

// finish sets the trailer saying where a later request continues from.
func (o *outputWriter) finish() {
	if o.started {
		o.w.Header().Set("X-Output-Next", strconv.FormatInt(o.q.Offset, 10))
	}
}

// copy writes everything stored from the current offset on, and flushes.
func (o *outputWriter) copy() error {
	for {
		q := o.q
		q.Limit = outputChunk
		out, err := o.api.store.ReadOutput(o.r.Context(), q)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return errorf(http.StatusNotFound, CodeMachineNotFound, "Run %q has no machine %q.", q.RunID, q.Machine)
			}
			return err
		}
		o.start(out.Total)
		if len(out.Data) > 0 {
			if _, err := o.w.Write(out.Data); err != nil {
				return err
			}
		}
		// Next, not the bytes written: a marker of dropped output is
		// not in the offsets, the dropped bytes are.
		progressed := out.Next > o.q.Offset
		o.q.Offset = max(o.q.Offset, out.Next)
		if !progressed || o.q.Offset >= out.Total {
			if err := http.NewResponseController(o.w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return err
			}
			return nil
		}
	}
}

// failed ends the response after an error: as a JSON error while nothing
// was sent, else by aborting the connection, so the client sees a
// truncated transfer and not a complete-looking one.
func (o *outputWriter) failed(err error) {
	if !o.started {
		o.api.fail(o.w, o.r, err)
		return
	}
	if o.r.Context().Err() != nil {
		return
	}
	o.api.log.Warn("output stream ended by error", "run_id", o.q.RunID, "machine", o.q.Machine, "offset_bytes", o.q.Offset, "error", err)
	panic(http.ErrAbortHandler)
}
