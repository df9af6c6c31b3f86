package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"
)

var clientCommands = map[string]func(args []string, stdout, stderr io.Writer) int{
	"jobs":       cmdJobs,
	"run":        cmdRun,
	"kill":       cmdKill,
	"enable":     func(a []string, o, e io.Writer) int { return cmdToggle("enable", a, o, e) },
	"disable":    func(a []string, o, e io.Writer) int { return cmdToggle("disable", a, o, e) },
	"reset":      func(a []string, o, e io.Writer) int { return cmdToggle("reset", a, o, e) },
	"runs":       cmdRuns,
	"run-status": cmdRunStatus,
	"output":     cmdLogs, // the older name of logs, kept for scripts
	"next":       cmdNext,

	"logs":        cmdLogs,
	"job":         cmdJob,
	"signal":      cmdSignal,
	"maintenance": cmdMaintenance,
	"audit":       cmdAudit,
}

// client talks to a core's API.
type client struct {
	addr  string
	token string
	http  *http.Client
}

// newFlags starts a command's flags with -addr, whose default is
// SALTPETER_ADDR; a flag given wins over the environment.
func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("SALTPETER_ADDR")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	addr := fs.String("addr", def, "the core's address (SALTPETER_ADDR)")
	return fs, addr
}

// newClient returns a client for addr. The token comes from
// SALTPETER_TOKEN only, never from a flag: a command line is visible to
// every user in ps and is kept in shell history.
func newClient(addr string) *client {
	return &client{addr: addr, token: os.Getenv("SALTPETER_TOKEN"), http: &http.Client{}}
}

// apiError is the API's JSON error.
type apiError struct {
	Status  int
	Message string `json:"error"`
	Code    string `json:"code"`
	// hint says what the operator can do about it, when the CLI knows.
	hint string
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
	switch e.Status {
	case http.StatusUnauthorized:
		msg = "not authenticated: " + msg
	case http.StatusForbidden:
		msg = "not allowed: " + msg
	}
	if e.hint != "" {
		msg += "\n  " + e.hint
	}
	return msg
}

// send makes a request and returns the response, or the API's error for
// a status of 400 and up.
func (c *client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.addr+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		e := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e.Message = string(bytes.TrimSpace(data))
		}
		switch {
		case e.Status == http.StatusUnauthorized && c.token == "":
			e.hint = "set SALTPETER_TOKEN to one of the core's api_tokens"
		case e.Status == http.StatusUnauthorized:
			e.hint = "SALTPETER_TOKEN is not a token this core knows"
		case e.Status == http.StatusForbidden && e.Code == "FORBIDDEN" && method != http.MethodGet:
			e.hint = "this needs a token with the operate role in SALTPETER_TOKEN"
		}
		return nil, e
	}
	return resp, nil
}

// do makes a request and decodes a JSON answer into out (if set).
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read response of %s %s: %w", method, path, err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode response of %s %s: %w", method, path, err)
		}
	}
	return nil
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "saltpeter:", err)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusConflict {
		return 3
	}
	return 1
}

func ctxWithSignals() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func cmdJobs(args []string, stdout, stderr io.Writer) int {
	fs, addr := newFlags("jobs", stderr)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if fs.Parse(args) != nil {
		return 2
	}
	ctx, cancel := ctxWithSignals()
	defer cancel()
	var resp struct {
		Jobs []struct {
			Name     string   `json:"name"`
			Schedule string   `json:"schedule"`
			Enabled  bool     `json:"enabled"`
			NextRun  *string  `json:"next_run"`
			Running  []string `json:"running"`
			LastRun  *struct {
				Status string `json:"status"`
			} `json:"last_run"`
		} `json:"jobs"`
	}
	raw, err := newClient(*addr).getJSON(ctx, "/api/v1/jobs", &resp)
	if err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		writeRaw(stdout, raw)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSCHEDULE\tENABLED\tRUNNING\tLAST\tNEXT")
	for _, j := range resp.Jobs {
		next, last := "-", "-"
		if j.NextRun != nil {
			next = *j.NextRun
		}
		if j.LastRun != nil {
			last = j.LastRun.Status
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%s\t%s\n", j.Name, j.Schedule, j.Enabled, len(j.Running), last, next)
	}
	tw.Flush()
	return 0
}

func oneArg(fs *flag.FlagSet, stderr io.Writer, what string) (string, bool) {
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "saltpeter %s: want one %s\n", fs.Name(), what)
		return "", false
	}
	return fs.Arg(0), true
}

// cmdRun starts a run and prints its id. With -wait it then waits for the
// run's end, prints its result and exits with the run's status (see
// runExitCodes); on a terminal a progress line shows meanwhile, in a pipe
// nothing does.
func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs, addr := newFlags("run", stderr)
	wait := fs.Bool("wait", false, "wait for the run's end; exit with its status")
	poll := fs.Duration("poll", time.Second, "with -wait: how often to ask the core")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseFailed(err)
	}
	if len(pos) != 1 {
		return usageErr(stderr, "run", "want one job name")
	}
	if *poll <= 0 {
		return usageErr(stderr, "run", "-poll %s: want a positive duration", *poll)
	}
	ctx, cancel := ctxWithSignals()
	defer cancel()
	c := newClient(*addr)
	var out struct {
		RunID string `json:"run_id"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(pos[0])+"/run", nil, &out); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintln(stdout, out.RunID)
	if !*wait {
		return 0
	}
	progress, endProgress := func(runView) {}, func() {}
	if isTerminal(stdout) {
		// \r and erase-line redraw one line in place.
		progress = func(r runView) { fmt.Fprintf(stdout, "\r\033[K%s", progressLine(r)) }
		endProgress = func() { fmt.Fprint(stdout, "\r\033[K") }
	}
	r, err := c.waitRun(ctx, out.RunID, *poll, progress)
	endProgress()
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "saltpeter run: stopped waiting; run %s goes on\n", out.RunID)
			return exitInterrupted
		}
		return fail(stderr, err)
	}
	printRunResult(stdout, r)
	return runExitCode(r.Status)
}

// cmdKill kills every running run of a job, one run, or one run on one
// machine. "kill X" takes X for a run id when it looks like one (26
// characters of Crockford base32, as the core writes them) and for a job
// name otherwise; -run and -job say which when a job is named like a run
// id.
func cmdKill(args []string, stdout, stderr io.Writer) int {
	fs, addr := newFlags("kill", stderr)
	run := fs.String("run", "", "kill this run")
	job := fs.String("job", "", "kill every running run of this job")
	machine := fs.String("machine", "", "with a run: kill it on this machine only")
	sig := fs.String("signal", "", "override the job's kill signal")
	grace := fs.String("grace", "", "override the job's grace period")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseFailed(err)
	}
	switch {
	case len(pos) > 1 || len(pos) == 1 && (*run != "" || *job != "") || *run != "" && *job != "":
		return usageErr(stderr, "kill", "want one job name or run id")
	case len(pos) == 1 && looksLikeRunID(pos[0]):
		*run = pos[0]
	case len(pos) == 1:
		*job = pos[0]
	case *run == "" && *job == "":
		return usageErr(stderr, "kill", "want one job name or run id")
	}
	if *job != "" && *machine != "" {
		return usageErr(stderr, "kill", "-machine needs a run id, not a job")
	}
	body := map[string]string{}
	if *sig != "" {
		body["signal"] = *sig
	}
	if *grace != "" {
		body["grace"] = *grace
	}
	var path string
	switch {
	case *run != "" && *machine != "":
		path = "/api/v1/runs/" + url.PathEscape(*run) + "/machines/" + url.PathEscape(*machine) + "/kill"
	case *run != "":
		path = "/api/v1/runs/" + url.PathEscape(*run) + "/kill"
	default:
		path = "/api/v1/jobs/" + url.PathEscape(*job) + "/kill"
	}
	ctx, cancel := ctxWithSignals()
	defer cancel()
	var out struct {
		Runs []string `json:"runs"`
	}
	if err := newClient(*addr).do(ctx, http.MethodPost, path, body, &out); err != nil {
		return fail(stderr, err)
	}
	for _, r := range out.Runs {
		fmt.Fprintln(stdout, r)
	}
	return 0
}

func cmdToggle(verb string, args []string, stdout, stderr io.Writer) int {
	fs, addr := newFlags(verb, stderr)
	if fs.Parse(args) != nil {
		return 2
	}
	job, ok := oneArg(fs, stderr, "job name")
	if !ok {
		return 2
	}
	ctx, cancel := ctxWithSignals()
	defer cancel()
	if err := newClient(*addr).do(ctx, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(job)+"/"+verb, nil, nil); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: %sd\n", job, verb)
	return 0
}

func cmdRuns(args []string, stdout, stderr io.Writer) int {
	fs, addr := newFlags("runs", stderr)
	job := fs.String("job", "", "only this job's runs")
	limit := fs.Int("limit", 20, "how many")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if fs.Parse(args) != nil {
		return 2
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *job != "" {
		q.Set("job", *job)
	}
	ctx, cancel := ctxWithSignals()
	defer cancel()
	var resp struct {
		Runs []struct {
			ID        string `json:"id"`
			Job       string `json:"job"`
			Trigger   string `json:"trigger"`
			Status    string `json:"status"`
			StartedAt string `json:"started_at"`
		} `json:"runs"`
	}
	raw, err := newClient(*addr).getJSON(ctx, "/api/v1/runs?"+q.Encode(), &resp)
	if err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		writeRaw(stdout, raw)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tJOB\tTRIGGER\tSTATUS\tSTARTED")
	for _, r := range resp.Runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Job, r.Trigger, r.Status, r.StartedAt)
	}
	tw.Flush()
	return 0
}

func cmdRunStatus(args []string, stdout, stderr io.Writer) int {
	fs, addr := newFlags("run-status", stderr)
	if fs.Parse(args) != nil {
		return 2
	}
	id, ok := oneArg(fs, stderr, "run id")
	if !ok {
		return 2
	}
	ctx, cancel := ctxWithSignals()
	defer cancel()
	var run json.RawMessage
	if err := newClient(*addr).do(ctx, http.MethodGet, "/api/v1/runs/"+url.PathEscape(id), nil, &run); err != nil {
		return fail(stderr, err)
	}
	var buf bytes.Buffer
	_ = json.Indent(&buf, run, "", "  ")
	fmt.Fprintln(stdout, buf.String())
	return 0
}

// cmdNext prints a job's next fire times, in the job's zone and in UTC,
// with what daylight saving did to each (the API's dst field).
func cmdNext(args []string, stdout, stderr io.Writer) int {
	fs, addr := newFlags("next", stderr)
	count := fs.Int("count", 5, "how many fire times (the core gives at most 100)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	// Flags may come before or after the job name: "next JOB -count 3"
	// reads as naturally as "next -count 3 JOB", and the flag package
	// stops at the first argument that is not a flag.
	if fs.Parse(args) != nil {
		return 2
	}
	var job string
	if fs.NArg() > 0 {
		job = fs.Arg(0)
		if fs.Parse(fs.Args()[1:]) != nil {
			return 2
		}
	}
	if job == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "saltpeter next: want one job name")
		return 2
	}
	if *count < 1 {
		fmt.Fprintf(stderr, "saltpeter next: -count %d: want 1 or more\n", *count)
		return 2
	}
	ctx, cancel := ctxWithSignals()
	defer cancel()
	var resp struct {
		Timezone string `json:"timezone"`
		Fires    []struct {
			At      string `json:"at"`
			AtLocal string `json:"at_local"`
			DST     string `json:"dst"`
		} `json:"fires"`
	}
	path := "/api/v1/jobs/" + url.PathEscape(job) + "/next?" + url.Values{"count": {strconv.Itoa(*count)}}.Encode()
	raw, err := newClient(*addr).getJSON(ctx, path, &resp)
	if err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		writeRaw(stdout, raw)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "LOCAL (%s)\tUTC\tDST\n", resp.Timezone)
	for _, f := range resp.Fires {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.AtLocal, f.At, dstNote(f.DST))
	}
	tw.Flush()
	if len(resp.Fires) == 0 {
		fmt.Fprintln(stdout, "(none: the job is @manually, or its schedule has no further date)")
	}
	return 0
}

// dstNote explains the API's dst value to the operator; a value this
// version does not know is shown as it is.
func dstNote(v string) string {
	switch v {
	case "shifted":
		return "shifted: its time does not exist that day (dst_gap = \"shift\")"
	case "second_pass":
		return "second pass: its time comes twice that day"
	case "transition":
		return "offset changed since the previous fire"
	}
	return v
}
