package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"
)

// Exit codes of "run -wait": the run's final status. They sit apart from
// the CLI's own codes (1 the command failed, 2 usage, 3 conflict) so that
// a script can tell "the job failed" from "the core could not be asked".
var runExitCodes = map[string]int{
	"succeeded":   0,
	"failed":      10,
	"timeout":     11,
	"killed":      12,
	"lost":        13,
	"not_started": 14,
	"error":       15,
	"cancelled":   16,
	"skipped":     17,
}

// exitUnknownStatus is a final status this version does not know.
const exitUnknownStatus = 19

// exitInterrupted: the wait was interrupted (SIGINT/SIGTERM); the run
// itself goes on.
const exitInterrupted = 130

// waitRetries is how many polls in a row may fail (store unavailable,
// connection refused during a core restart) before the wait gives up.
const waitRetries = 10

func runExitCode(status string) int {
	if c, ok := runExitCodes[status]; ok {
		return c
	}
	return exitUnknownStatus
}

// runView is the part of GET /api/v1/runs/{id} the CLI shows.
type runView struct {
	ID       string        `json:"id"`
	Job      string        `json:"job"`
	Status   string        `json:"status"`
	Reason   string        `json:"reason"`
	Machines []machineView `json:"machines"`
}

type machineView struct {
	Machine   string  `json:"machine"`
	Status    string  `json:"status"`
	ExitCode  *int    `json:"exit_code"`
	Reason    string  `json:"reason"`
	Error     string  `json:"error"`
	StartedAt *string `json:"started_at"`
}

func finalStatus(s string) bool { return s != "" && s != "pending" && s != "running" }

// progressLine counts a run's machines as a person waiting wants them:
// started (the job's process is or was running), finished, and failed
// (finished with anything but succeeded or skipped).
func progressLine(r runView) string {
	var started, finished, failed int
	for _, m := range r.Machines {
		if m.StartedAt != nil || m.Status == "running" {
			started++
		}
		if finalStatus(m.Status) {
			finished++
			if m.Status != "succeeded" && m.Status != "skipped" {
				failed++
			}
		}
	}
	return fmt.Sprintf("%s %s: %d machines, %d started, %d finished, %d failed",
		r.Job, r.ID, len(r.Machines), started, finished, failed)
}

// transient reports whether a failed poll is worth repeating: the core
// restarting or its store briefly away, not a refusal.
func transient(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusBadGateway || ae.Status == http.StatusGatewayTimeout
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF)
}

// waitRun polls the run every poll until its status is final, calling
// progress with each non-final view. The API has no "wait for this run"
// call; the events socket would need a WebSocket client, and a poll a
// second is nothing to a core.
func (c *client) waitRun(ctx context.Context, id string, poll time.Duration, progress func(runView)) (runView, error) {
	t := time.NewTicker(poll)
	defer t.Stop()
	path := "/api/v1/runs/" + url.PathEscape(id)
	failures := 0
	for {
		var r runView
		err := c.do(ctx, http.MethodGet, path, nil, &r)
		switch {
		case err == nil:
			failures = 0
			if finalStatus(r.Status) {
				return r, nil
			}
			progress(r)
		case ctx.Err() != nil:
			return r, ctx.Err()
		case transient(err) && failures < waitRetries:
			failures++
		default:
			return r, fmt.Errorf("wait for run %s: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-t.C:
		}
	}
}

// printRunResult prints a finished run: its status, then one row per
// machine.
func printRunResult(w io.Writer, r runView) {
	fmt.Fprintf(w, "%s %s: %s", r.Job, r.ID, r.Status)
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	fmt.Fprintln(w)
	if len(r.Machines) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tSTATUS\tEXIT\tREASON")
	for _, m := range r.Machines {
		code := "-"
		if m.ExitCode != nil {
			code = fmt.Sprint(*m.ExitCode)
		}
		reason := m.Reason
		if m.Error != "" {
			reason = m.Error
		}
		if reason == "" {
			reason = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Machine, m.Status, code, reason)
	}
	tw.Flush()
}
