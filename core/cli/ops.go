package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// jobView is the part of GET /api/v1/jobs/{name} the CLI shows.
type jobView struct {
	Name            string   `json:"name"`
	Group           string   `json:"group"`
	Schedule        string   `json:"schedule"`
	Timezone        string   `json:"timezone"`
	Enabled         bool     `json:"enabled"`
	EnabledInConfig bool     `json:"enabled_in_config"`
	OverrideBy      string   `json:"override_by"`
	OverrideAt      *string  `json:"override_at"`
	NextRun         *string  `json:"next_run"`
	Running         []string `json:"running"`
	LastRun         *struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"last_run"`
	Command string            `json:"command"`
	Cwd     string            `json:"cwd"`
	User    string            `json:"user"`
	Env     map[string]string `json:"env"`
	Target  struct {
		Plugin string `json:"plugin"`
		Args   any    `json:"args"`
	} `json:"target"`
	NumberOfTargets int     `json:"number_of_targets"`
	BatchSize       int     `json:"batch_size"`
	Timeout         *string `json:"timeout"`
	Overlap         string  `json:"overlap"`
	Kill            struct {
		Signal string `json:"signal"`
		Grace  string `json:"grace"`
	} `json:"kill"`
}

// cmdJob shows one job: its settings, its next fire times and the runs
// going on now. -json prints the API's job document alone.
func cmdJob(args []string, stdout, stderr io.Writer) int {
	fs, addr := newFlags("job", stderr)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	count := fs.Int("count", 3, "how many next fire times to show")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseFailed(err)
	}
	if len(pos) != 1 {
		return usageErr(stderr, "job", "want one job name")
	}
	ctx, cancel := ctxWithSignals()
	defer cancel()
	c := newClient(*addr)
	var j jobView
	raw, err := c.getJSON(ctx, "/api/v1/jobs/"+url.PathEscape(pos[0]), &j)
	if err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		writeRaw(stdout, raw)
		return 0
	}
	var next struct {
		Fires []struct {
			AtLocal string `json:"at_local"`
		} `json:"fires"`
	}
	if *count > 0 {
		path := "/api/v1/jobs/" + url.PathEscape(j.Name) + "/next?" + url.Values{"count": {fmt.Sprint(*count)}}.Encode()
		if err := c.do(ctx, http.MethodGet, path, nil, &next); err != nil {
			return fail(stderr, err)
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("job", j.Name)
	if j.Group != "" {
		row("group", j.Group)
	}
	row("schedule", j.Schedule+" ("+j.Timezone+")")
	enabled := fmt.Sprint(j.Enabled)
	if j.OverrideBy != "" {
		enabled += fmt.Sprintf(" (set by %s at %s; config says %v)", j.OverrideBy, orDash(j.OverrideAt), j.EnabledInConfig)
	}
	row("enabled", enabled)
	row("command", j.Command)
	if j.User != "" {
		row("user", j.User)
	}
	if j.Cwd != "" {
		row("cwd", j.Cwd)
	}
	if len(j.Env) > 0 {
		names := make([]string, 0, len(j.Env))
		for k := range j.Env {
			names = append(names, k)
		}
		slices.Sort(names)
		row("env", strings.Join(names, " "))
	}
	row("target", j.Target.Plugin)
	row("timeout", orDash(j.Timeout))
	row("overlap", j.Overlap)
	row("kill", strings.TrimSpace(j.Kill.Signal+" grace "+j.Kill.Grace))
	last := "-"
	if j.LastRun != nil {
		last = j.LastRun.ID + " " + j.LastRun.Status
	}
	row("last run", last)
	running := "-"
	if len(j.Running) > 0 {
		running = strings.Join(j.Running, " ")
	}
	row("running", running)
	for i, f := range next.Fires {
		k := ""
		if i == 0 {
			k = "next"
		}
		row(k, f.AtLocal)
	}
	if *count > 0 && len(next.Fires) == 0 {
		row("next", "-")
	}
	tw.Flush()
	return 0
}

// cmdSignal sends a signal to a run without killing it (SIGSTOP and
// SIGCONT pause and resume; the core refuses SIGKILL, which is kill's).
func cmdSignal(args []string, stdout, stderr io.Writer) int {
	fs, addr := newFlags("signal", stderr)
	machine := fs.String("machine", "", "this machine only (default: every machine of the run)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseFailed(err)
	}
	if len(pos) != 2 {
		return usageErr(stderr, "signal", "want RUN SIGNAL [-machine M]")
	}
	body := map[string]string{"signal": pos[1]}
	if *machine != "" {
		body["machine"] = *machine
	}
	ctx, cancel := ctxWithSignals()
	defer cancel()
	if err := newClient(*addr).do(ctx, http.MethodPost, "/api/v1/runs/"+url.PathEscape(pos[0])+"/signal", body, nil); err != nil {
		return fail(stderr, err)
	}
	where := "every machine"
	if *machine != "" {
		where = *machine
	}
	fmt.Fprintf(stdout, "%s: sent %s to %s\n", pos[0], pos[1], where)
	return 0
}

type maintenanceView struct {
	Global   bool     `json:"global"`
	Machines []string `json:"machines"`
	Source   string   `json:"source"`
	SetBy    string   `json:"set_by"`
	SetAt    *string  `json:"set_at"`
}

// cmdMaintenance shows the maintenance in force, sets it ("set", which
// replaces it whole, as PUT does: "set -machines db3" also ends global
// maintenance) or drops the API's override ("reset": the HCL block holds
// again).
func cmdMaintenance(args []string, stdout, stderr io.Writer) int {
	sub := "show"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs, addr := newFlags("maintenance "+sub, stderr)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	var global *bool
	var machines *string
	if sub == "set" {
		global = fs.Bool("global", false, "start no new runs (running ones finish)")
		machines = fs.String("machines", "", "comma-separated machines to leave out of every run")
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseFailed(err)
	}
	if len(pos) != 0 {
		return usageErr(stderr, "maintenance", "unexpected %q; want maintenance [show | set [-global] [-machines a,b] | reset]", pos[0])
	}
	var method, path = http.MethodGet, "/api/v1/maintenance"
	var body any
	switch sub {
	case "show":
	case "set":
		list := []string{}
		for _, m := range strings.Split(*machines, ",") {
			if m = strings.TrimSpace(m); m != "" {
				list = append(list, m)
			}
		}
		method, body = http.MethodPut, map[string]any{"global": *global, "machines": list}
	case "reset":
		method = http.MethodDelete
	default:
		return usageErr(stderr, "maintenance", "unknown subcommand %q; want show, set or reset", sub)
	}
	ctx, cancel := ctxWithSignals()
	defer cancel()
	resp, err := newClient(*addr).send(ctx, method, path, body)
	if err != nil {
		return fail(stderr, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fail(stderr, fmt.Errorf("read response of %s %s: %w", method, path, err))
	}
	if *asJSON {
		writeRaw(stdout, raw)
		return 0
	}
	var m maintenanceView
	if err := json.Unmarshal(raw, &m); err != nil {
		return fail(stderr, fmt.Errorf("decode response of %s %s: %w", method, path, err))
	}
	printMaintenance(stdout, m)
	return 0
}

func printMaintenance(w io.Writer, m maintenanceView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	global := "off"
	if m.Global {
		global = "on: no new runs start"
	}
	fmt.Fprintf(tw, "global\t%s\n", global)
	machines := "-"
	if len(m.Machines) > 0 {
		machines = strings.Join(m.Machines, " ")
	}
	fmt.Fprintf(tw, "machines\t%s\n", machines)
	source := "config (the HCL maintenance block)"
	if m.Source == "api" {
		source = fmt.Sprintf("api (set by %s at %s; maintenance reset returns to the config)", m.SetBy, orDash(m.SetAt))
	}
	fmt.Fprintf(tw, "source\t%s\n", source)
	tw.Flush()
}

// cmdAudit prints the audit log, newest first: who did what, through
// which surface, and how it ended.
func cmdAudit(args []string, stdout, stderr io.Writer) int {
	fs, addr := newFlags("audit", stderr)
	job := fs.String("job", "", "only entries about this job")
	by := fs.String("by", "", "only entries by this token name")
	action := fs.String("action", "", "only this action (run, kill, signal, enable, disable, reset, maintenance_set, maintenance_reset, reload, sign_in, sign_out)")
	before := fs.Int64("before", 0, "only entries older than this id (the next page: the last id shown)")
	limit := fs.Int("limit", 50, "how many")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if fs.Parse(args) != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "audit takes no arguments, only flags; got %q\n", fs.Arg(0))
		return 2
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	for k, v := range map[string]string{"job": *job, "by": *by, "action": *action} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *before > 0 {
		q.Set("before", strconv.FormatInt(*before, 10))
	}
	ctx, cancel := ctxWithSignals()
	defer cancel()
	var resp struct {
		Entries []struct {
			ID      int64  `json:"id"`
			At      string `json:"at"`
			By      string `json:"by"`
			Action  string `json:"action"`
			Via     string `json:"via"`
			Job     string `json:"job"`
			RunID   string `json:"run_id"`
			Machine string `json:"machine"`
			Detail  string `json:"detail"`
			Outcome string `json:"outcome"`
			Error   string `json:"error"`
		} `json:"entries"`
		NextBefore *int64 `json:"next_before"`
	}
	raw, err := newClient(*addr).getJSON(ctx, "/api/v1/audit?"+q.Encode(), &resp)
	if err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		writeRaw(stdout, raw)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAT\tBY\tVIA\tACTION\tWHAT\tOUTCOME\tDETAIL")
	for _, e := range resp.Entries {
		what := e.Job
		if e.RunID != "" {
			what = strings.TrimPrefix(what+" run "+e.RunID, " ")
		}
		if e.Machine != "" {
			what += " machine " + e.Machine
		}
		outcome := e.Outcome
		if e.Error != "" {
			// The first line: a refused configuration's diagnostics
			// follow on the next ones, and the JSON has them whole.
			first, _, _ := strings.Cut(e.Error, "\n")
			outcome += ": " + first
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.At, e.By, e.Via, e.Action, dash(what), outcome, dash(e.Detail))
	}
	tw.Flush()
	if resp.NextBefore != nil {
		fmt.Fprintf(stderr, "older entries: saltpeter audit -before %d\n", *resp.NextBefore)
	}
	return 0
}

// dash stands in for an empty cell, so that columns stay readable.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
