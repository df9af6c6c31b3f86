package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
)

// cmdLogs prints a run's output. With one machine (named, or the run's
// only one) the bytes come through unchanged, so they can be piped on.
// With several and no -machine, each line is prefixed with its machine
// ("db1 | ..."), as docker compose does: a run of a fleet is usually
// asked "what happened", and refusing until a machine is named would
// make that a loop in the shell. With -f the machines are followed at
// once and lines appear as they complete; the command ends when every
// machine's result is final.
func cmdLogs(args []string, stdout, stderr io.Writer) int {
	name := "logs"
	fs, addr := newFlags(name, stderr)
	follow := fs.Bool("f", false, "follow: stream new output until the machine's result is final")
	fs.BoolVar(follow, "follow", false, "same as -f")
	machine := fs.String("machine", "", "this machine only (default: every machine of the run)")
	stream := fs.String("stream", "", "stdout, stderr or system (default: all, in order)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseFailed(err)
	}
	// "output RUN MACHINE", the older form, still works.
	if len(pos) == 2 && *machine == "" {
		*machine, pos = pos[1], pos[:1]
	}
	if len(pos) != 1 {
		return usageErr(stderr, name, "want RUN [-machine M] [-f]")
	}
	run := pos[0]
	ctx, cancel := ctxWithSignals()
	defer cancel()
	c := newClient(*addr)
	machines := []string{*machine}
	if *machine == "" {
		var r runView
		if err := c.do(ctx, http.MethodGet, "/api/v1/runs/"+url.PathEscape(run), nil, &r); err != nil {
			return fail(stderr, err)
		}
		if len(r.Machines) == 0 {
			fmt.Fprintf(stderr, "saltpeter logs: run %s has no machines (status %s)\n", run, r.Status)
			return 1
		}
		machines = machines[:0]
		for _, m := range r.Machines {
			machines = append(machines, m.Machine)
		}
	}
	q := url.Values{}
	if *follow {
		q.Set("follow", "1")
	}
	if *stream != "" {
		q.Set("stream", *stream)
	}
	if len(machines) == 1 {
		if err := c.copyOutput(ctx, run, machines[0], q, stdout); err != nil && ctx.Err() == nil {
			return fail(stderr, err)
		}
		return 0
	}
	if err := c.copyPrefixed(ctx, run, machines, q, *follow, stdout); err != nil && ctx.Err() == nil {
		return fail(stderr, err)
	}
	return 0
}

// copyOutput copies one machine's output to w; with follow=1 in q it
// returns when the core ends the stream, which it does once the machine's
// result is final.
func (c *client) copyOutput(ctx context.Context, run, machine string, q url.Values, w io.Writer) error {
	path := "/api/v1/runs/" + url.PathEscape(run) + "/machines/" + url.PathEscape(machine) + "/output"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("read output of %s on %s: %w", run, machine, err)
	}
	// The core sets the X-Output-Next trailer when it ended the stream
	// itself; without it the body stopped short of what it meant to send.
	if resp.Trailer.Get("X-Output-Next") == "" {
		return fmt.Errorf("read output of %s on %s: the stream ended before the core finished it", run, machine)
	}
	return nil
}

// copyPrefixed prints several machines' output with each line prefixed by
// its machine: one after the other, or all at once when following.
func (c *client) copyPrefixed(ctx context.Context, run string, machines []string, q url.Values, follow bool, w io.Writer) error {
	width := 0
	for _, m := range machines {
		width = max(width, len(m))
	}
	var mu sync.Mutex
	writers := make([]*linePrefixer, len(machines))
	for i, m := range machines {
		writers[i] = &linePrefixer{mu: &mu, w: w, prefix: []byte(fmt.Sprintf("%-*s | ", width, m))}
	}
	if !follow {
		for i, m := range machines {
			if err := c.copyOutput(ctx, run, m, q, writers[i]); err != nil {
				return err
			}
			if err := writers[i].Flush(); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The first error ends the command; the other streams, cancelled
	// because of it, would only report the cancellation.
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for i, m := range machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.copyOutput(ctx, run, m, q, writers[i])
			if ferr := writers[i].Flush(); err == nil {
				err = ferr
			}
			if err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	return first
}

// linePrefixer writes whole lines, each behind its prefix, under a lock
// shared with the other machines' writers so lines never interleave. A
// partial line waits for its end (or Flush).
type linePrefixer struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix []byte
	buf    []byte
}

func (p *linePrefixer) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	var out []byte
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		out = append(out, p.prefix...)
		out = append(out, p.buf[:i+1]...)
		p.buf = p.buf[i+1:]
	}
	if len(out) == 0 {
		return len(b), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Flush writes a last line that had no newline, ending it with one.
func (p *linePrefixer) Flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	line := append(append(append([]byte(nil), p.prefix...), p.buf...), '\n')
	p.buf = nil
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.w.Write(line)
	return err
}
