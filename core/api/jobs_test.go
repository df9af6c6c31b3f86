package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/core/schedule"
	"github.com/saltpeter/saltpeter/sdk/store"
)

func TestListJobs(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)
	e.addRun(store.Run{ID: "r-old", Job: "backup", Trigger: store.TriggerSchedule, StartedAt: t0.Add(-24 * time.Hour), Status: store.StatusFailed})
	e.addRun(store.Run{ID: "r-new", Job: "backup", Trigger: store.TriggerSchedule, StartedAt: t0, FinishedAt: t0.Add(time.Minute), Status: store.StatusFailed,
		Machines: []store.Machine{{Machine: "db1", Status: store.StatusSucceeded, ExitCode: ptr(0)}, {Machine: "db2", Status: store.StatusFailed, ExitCode: ptr(3)},
			{Machine: "db3", Status: store.StatusSucceeded, ExitCode: ptr(0)}}})

	r := e.do(req{Method: "GET", Path: "/api/v1/jobs"})
	wantStatus(t, r, 200)
	var got struct {
		Jobs []map[string]any `json:"jobs"`
	}
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Jobs) != 2 || got.Jobs[0]["name"] != "backup" || got.Jobs[1]["name"] != "manual" {
		t.Fatalf("jobs = %s, want backup then manual", r.Body)
	}
	want := map[string]any{
		"name": "backup", "group": "db", "schedule": "0 3 * * *", "timezone": "Europe/Berlin",
		"enabled": true, "enabled_in_config": true, "override_at": nil,
		"next_run": "2025-03-02T02:00:00Z",
		"running":  []any{"r-running"},
		"last_run": map[string]any{"id": "r-new", "status": "failed", "started_at": "2025-03-01T03:00:00Z", "finished_at": "2025-03-01T03:01:00Z",
			"machine_counts": map[string]any{"succeeded": 2.0, "failed": 1.0},
			"machines": []any{
				map[string]any{"machine": "db1", "status": "succeeded", "exit_code": 0.0},
				map[string]any{"machine": "db2", "status": "failed", "exit_code": 3.0},
				map[string]any{"machine": "db3", "status": "succeeded", "exit_code": 0.0},
			}},
	}
	if !reflect.DeepEqual(got.Jobs[0], want) {
		t.Errorf("backup =\n%v\nwant\n%v", got.Jobs[0], want)
	}
	manual := got.Jobs[1]
	for _, k := range []string{"next_run", "last_run"} {
		if v, ok := manual[k]; !ok || v != nil {
			t.Errorf("manual %s = %v (present %v), want null", k, v, ok)
		}
	}
	if run, ok := manual["running"].([]any); !ok || len(run) != 0 {
		t.Errorf("manual running = %v, want []", manual["running"])
	}
	if _, ok := got.Jobs[0]["env"]; ok {
		t.Error("the list carries env; only the detail should")
	}
}

func TestGetJob(t *testing.T) {
	e := newEnv(t)
	r := e.do(req{Method: "GET", Path: "/api/v1/jobs/backup"})
	wantStatus(t, r, 200)
	if strings.Contains(string(r.Body), "hunter2") || strings.Contains(string(r.Body), `"full"`) {
		t.Fatalf("env values leak: %s", r.Body)
	}
	v := r.JSON(t)
	checks := map[string]any{
		"name":              "backup",
		"command":           "/usr/local/bin/backup",
		"cwd":               "/srv",
		"user":              "backup",
		"env":               map[string]any{"PGPASSWORD": "***", "MODE": "***"},
		"target":            map[string]any{"plugin": "static", "args": map[string]any{"hosts": []any{"db1", "db2"}}},
		"timeout":           "2h0m0s",
		"soft_timeout":      nil,
		"overlap":           "skip",
		"kill":              map[string]any{"signal": "SIGTERM", "grace": "30s"},
		"retry":             map[string]any{"attempts": float64(2), "backoff": "1m0s"},
		"expect":            map[string]any{"max_gap": "2d"},
		"wrapper":           map[string]any{"path": "", "protocol": float64(2)},
		"enabled":           true,
		"enabled_in_config": true,
		"next_run":          "2025-03-02T02:00:00Z",
		"running":           []any{"r-running"},
		"last_run":          nil,
		"override_at":       nil,
		"notify":            []any{},
	}
	for k, want := range checks {
		if got, ok := v[k]; !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v (present %v), want %#v", k, got, ok, want)
		}
	}

	t.Run("unknown", func(t *testing.T) {
		v := wantError(t, e.do(req{Method: "GET", Path: "/api/v1/jobs/nope"}), 404, CodeJobNotFound)
		if !strings.Contains(v["error"].(string), `"nope"`) {
			t.Errorf("error %q does not name the job", v["error"])
		}
	})
}

func TestRunJob(t *testing.T) {
	tests := []struct {
		name   string
		job    string
		err    error
		status int
		code   string
	}{
		{"ok", "backup", nil, 202, ""},
		{"overlap", "backup", fmt.Errorf("run backup: %w", control.ErrOverlap), 409, CodeOverlap},
		{"maintenance", "backup", fmt.Errorf("run backup: %w", control.ErrMaintenance), 409, CodeMaintenance},
		{"unknown", "nope", nil, 404, CodeJobNotFound},
		{"store down", "backup", fmt.Errorf("create run: %w", store.ErrUnavailable), 503, CodeStoreUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.ctl.setErr("RunNow", tt.err)
			r := e.do(req{Method: "POST", Path: "/api/v1/jobs/" + tt.job + "/run"})
			if tt.code != "" {
				wantError(t, r, tt.status, tt.code)
				return
			}
			wantStatus(t, r, 202)
			if v := r.JSON(t); v["run_id"] != "run-new" {
				t.Errorf("body = %s, want run_id run-new", r.Body)
			}
		})
	}
}

func TestKillJob(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		err     error
		status  int
		code    string
		signal  string
		grace   time.Duration
		wantRun bool
	}{
		{"no body", "", nil, 202, "", "", 0, true},
		{"empty object", "{}", nil, 202, "", "", 0, true},
		{"overrides", `{"signal":"int","grace":"10s"}`, nil, 202, "", "SIGINT", 10 * time.Second, true},
		{"days grace", `{"grace":"1d"}`, nil, 202, "", "", 24 * time.Hour, true},
		{"SIGKILL is fine for kill", `{"signal":"SIGKILL"}`, nil, 202, "", "SIGKILL", 0, true},
		{"unknown signal", `{"signal":"SIGNOPE"}`, nil, 400, CodeBadRequest, "", 0, false},
		{"bad grace", `{"grace":"soon"}`, nil, 400, CodeBadRequest, "", 0, false},
		{"garbage", `{"signal":`, nil, 400, CodeBadJSON, "", 0, false},
		{"unknown field", `{"sginal":"SIGINT"}`, nil, 400, CodeBadJSON, "", 0, false},
		{"wrong type", `{"grace":10}`, nil, 400, CodeBadJSON, "", 0, false},
		{"unknown job", "", fmt.Errorf("kill: %w", control.ErrUnknownJob), 404, CodeJobNotFound, "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.ctl.killed = []string{"r1", "r2"}
			e.ctl.setErr("Kill", tt.err)
			r := e.do(req{Method: "POST", Path: "/api/v1/jobs/backup/kill", Body: tt.body})
			calls := e.ctl.Calls("Kill")
			if tt.wantRun != (len(calls) == 1) {
				t.Fatalf("Kill calls = %+v, want called %v", calls, tt.wantRun)
			}
			if tt.code != "" {
				wantError(t, r, tt.status, tt.code)
				return
			}
			wantStatus(t, r, 202)
			want := call{Method: "Kill", Job: "backup", Signal: tt.signal, Grace: tt.grace, By: "local"}
			if calls[0] != want {
				t.Errorf("Kill call = %+v, want %+v", calls[0], want)
			}
			if v := r.JSON(t); !reflect.DeepEqual(v["runs"], []any{"r1", "r2"}) {
				t.Errorf("body = %s, want runs r1, r2", r.Body)
			}
		})
	}
	t.Run("nothing running", func(t *testing.T) {
		e := newEnv(t)
		r := e.do(req{Method: "POST", Path: "/api/v1/jobs/backup/kill"})
		wantStatus(t, r, 202)
		if string(r.Body) != `{"runs":[]}`+"\n" {
			t.Errorf("body = %s, want runs []", r.Body)
		}
	})
	t.Run("too large", func(t *testing.T) {
		e := newEnv(t)
		body := `{"signal":"` + strings.Repeat("x", maxBody) + `"}`
		wantError(t, e.do(req{Method: "POST", Path: "/api/v1/jobs/backup/kill", Body: body}), 413, CodeTooLarge)
	})
}

func TestEnableDisableReset(t *testing.T) {
	e := newEnv(t)
	steps := []struct {
		path        string
		method      string
		enabled     bool
		overrideBy  any
		overrideSet bool
	}{
		{"/api/v1/jobs/backup/disable", "SetEnabled", false, "local", true},
		{"/api/v1/jobs/backup/enable", "SetEnabled", true, "local", true},
		{"/api/v1/jobs/backup/reset", "ResetEnabled", true, nil, false},
	}
	for i, s := range steps {
		r := e.do(req{Method: "POST", Path: s.path})
		wantStatus(t, r, 200)
		v := r.JSON(t)
		if v["name"] != "backup" || v["command"] == nil {
			t.Fatalf("%s: body is not the job: %s", s.path, r.Body)
		}
		if v["enabled"] != s.enabled || v["enabled_in_config"] != true {
			t.Errorf("%s: enabled = %v, in config %v; want %v, true", s.path, v["enabled"], v["enabled_in_config"], s.enabled)
		}
		if v["override_by"] != s.overrideBy || (v["override_at"] != nil) != s.overrideSet {
			t.Errorf("%s: override = %v at %v", s.path, v["override_by"], v["override_at"])
		}
		calls := e.ctl.Calls(s.method)
		last := calls[len(calls)-1]
		if last.By != "local" || last.Job != "backup" || (s.method == "SetEnabled" && last.Enabled != s.enabled) {
			t.Errorf("step %d: call = %+v", i, last)
		}
	}
	for _, p := range []string{"enable", "disable", "reset"} {
		wantError(t, e.do(req{Method: "POST", Path: "/api/v1/jobs/nope/" + p}), 404, CodeJobNotFound)
	}
}

func TestNextRuns(t *testing.T) {
	e := newEnv(t)
	base := time.Date(2025, 3, 30, 0, 30, 0, 0, time.UTC)
	for i := range 200 {
		e.ctl.fires = append(e.ctl.fires, control.Fire{At: base.Add(time.Duration(i) * time.Hour), DST: i == 1})
	}
	tests := []struct {
		query  string
		status int
		n      int
	}{
		{"", 200, 5},
		{"?count=2", 200, 2},
		{"?count=500", 200, 100},
		{"?count=0", 400, 0},
		{"?count=x", 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := e.do(req{Method: "GET", Path: "/api/v1/jobs/backup/next" + tt.query})
			if tt.status != 200 {
				wantError(t, r, tt.status, CodeBadRequest)
				return
			}
			wantStatus(t, r, 200)
			var got struct {
				Fires []struct {
					At  string `json:"at"`
					DST *bool  `json:"dst_transition"`
				} `json:"fires"`
			}
			if err := json.Unmarshal(r.Body, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Fires) != tt.n {
				t.Fatalf("%d fires, want %d", len(got.Fires), tt.n)
			}
			if got.Fires[0].At != "2025-03-30T00:30:00Z" || got.Fires[0].DST == nil || *got.Fires[0].DST || !*got.Fires[1].DST {
				t.Errorf("fires = %s", r.Body)
			}
		})
	}
	wantError(t, e.do(req{Method: "GET", Path: "/api/v1/jobs/nope/next"}), 404, CodeJobNotFound)
}

// The next fires carry the job's local time and what daylight saving did
// to them. New York goes from 02:00 EST to 03:00 EDT on 2026-03-08 and from
// 02:00 EDT back to 01:00 EST on 2026-11-01. The fake runner returns the
// instants and offset-change flags the real one computes for the schedule.
func TestNextRunsDSTFlags(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	type fire struct {
		At            string `json:"at"`
		AtLocal       string `json:"at_local"`
		DSTTransition bool   `json:"dst_transition"`
		DST           string `json:"dst"`
	}
	tests := []struct {
		name        string
		gap, repeat string
		fires       []control.Fire
		want        []fire
	}{
		{"shift and twice", "shift", "twice",
			[]control.Fire{
				{At: at(t, "2026-03-08T06:30:00Z")}, {At: at(t, "2026-03-08T07:00:00Z"), DST: true},
				{At: at(t, "2026-11-01T05:30:00Z")}, {At: at(t, "2026-11-01T06:30:00Z"), DST: true}, {At: at(t, "2026-11-01T07:30:00Z")},
			},
			[]fire{
				{"2026-03-08T06:30:00Z", "2026-03-08T01:30:00-05:00", false, ""},
				{"2026-03-08T07:00:00Z", "2026-03-08T03:00:00-04:00", true, "shifted"},
				{"2026-11-01T05:30:00Z", "2026-11-01T01:30:00-04:00", false, ""},
				{"2026-11-01T06:30:00Z", "2026-11-01T01:30:00-05:00", true, "second_pass"},
				{"2026-11-01T07:30:00Z", "2026-11-01T02:30:00-05:00", false, ""},
			}},
		{"skip and once", "skip", "once",
			[]control.Fire{
				{At: at(t, "2026-03-08T06:30:00Z")}, {At: at(t, "2026-03-09T05:30:00Z"), DST: true},
				{At: at(t, "2026-11-01T05:30:00Z")}, {At: at(t, "2026-11-01T07:30:00Z"), DST: true},
			},
			[]fire{
				{"2026-03-08T06:30:00Z", "2026-03-08T01:30:00-05:00", false, ""},
				{"2026-03-09T05:30:00Z", "2026-03-09T01:30:00-04:00", true, "transition"},
				{"2026-11-01T05:30:00Z", "2026-11-01T01:30:00-04:00", false, ""},
				{"2026-11-01T07:30:00Z", "2026-11-01T02:30:00-05:00", true, "transition"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parsed, err := schedule.Parse("0 30 1,2 * * *")
			if err != nil {
				t.Fatal(err)
			}
			sched, err := schedule.WithDST(parsed, ny, tt.gap, tt.repeat)
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t)
			js := backupJob()
			js.Job.Schedule, js.Job.ParsedSchedule, js.Job.Timezone, js.Job.Location = "0 30 1,2 * * *", sched, "America/New_York", ny
			js.Job.DSTGap, js.Job.DSTRepeat = tt.gap, tt.repeat
			e.ctl.jobs["backup"], e.ctl.fires = js, tt.fires

			r := e.do(req{Method: "GET", Path: fmt.Sprintf("/api/v1/jobs/backup/next?count=%d", len(tt.fires))})
			wantStatus(t, r, 200)
			var got struct {
				Job      string `json:"job"`
				Timezone string `json:"timezone"`
				Fires    []fire `json:"fires"`
			}
			if err := json.Unmarshal(r.Body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Job != "backup" || got.Timezone != "America/New_York" || !reflect.DeepEqual(got.Fires, tt.want) {
				t.Errorf("got %s\nwant fires %+v", r.Body, tt.want)
			}
		})
	}
}

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestReload(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		e := newEnv(t, withTokens)
		wantStatus(t, e.do(req{Method: "POST", Path: "/api/v1/reload", Auth: opSecret}), 200)
		if c := e.ctl.Calls("Reload"); len(c) != 1 || c[0].By != "deployer" {
			t.Errorf("Reload calls = %+v, want one by deployer", c)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		e := newEnv(t)
		diags := "jobs.hcl:3,14: Invalid schedule; \"* * *\" has 3 fields"
		e.ctl.setErr("Reload", fmt.Errorf("reload: %w", &control.ConfigError{Diagnostics: diags}))
		v := wantError(t, e.do(req{Method: "POST", Path: "/api/v1/reload"}), 400, CodeConfigInvalid)
		if v["diagnostics"] != diags {
			t.Errorf("diagnostics = %q, want %q", v["diagnostics"], diags)
		}
	})
}

func TestClassify(t *testing.T) {
	a := New(Config{})
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("x: %w", control.ErrUnknownJob), 404, CodeJobNotFound},
		{fmt.Errorf("x: %w", control.ErrUnknownRun), 404, CodeRunNotFound},
		{fmt.Errorf("x: %w", control.ErrUnknownMachine), 404, CodeMachineNotFound},
		{fmt.Errorf("x: %w", control.ErrOverlap), 409, CodeOverlap},
		{fmt.Errorf("x: %w", control.ErrFinished), 409, CodeFinished},
		{fmt.Errorf("x: %w", control.ErrMaintenance), 409, CodeMaintenance},
		{fmt.Errorf("x: %w", control.ErrBadRequest), 400, CodeBadRequest},
		{fmt.Errorf("x: %w", store.ErrUnavailable), 503, CodeStoreUnavailable},
		{&control.ConfigError{Diagnostics: "d"}, 400, CodeConfigInvalid},
		{errors.New("boom"), 500, CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			e := a.classify(tt.err)
			if e.Status != tt.status || e.Code != tt.code || e.Message == "" {
				t.Errorf("classify(%v) = %+v, want %d %s", tt.err, e, tt.status, tt.code)
			}
		})
	}
}

// A run of many machines shows the first lastRunMachines of them and
// counts them all.
func TestListJobsLastRunBounded(t *testing.T) {
	e := newEnv(t)
	run := store.Run{ID: "r-big", Job: "backup", Trigger: store.TriggerSchedule, StartedAt: time.Now(), Status: store.StatusRunning}
	for i := range 3 * lastRunMachines {
		st := store.StatusRunning
		if i%3 == 0 {
			st = store.StatusSucceeded
		}
		run.Machines = append(run.Machines, store.Machine{Machine: fmt.Sprintf("m%03d", i), Status: st})
	}
	e.addRun(run)
	var got struct {
		Jobs []jobSummary `json:"jobs"`
	}
	r := e.do(req{Method: "GET", Path: "/api/v1/jobs"})
	wantStatus(t, r, 200)
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	lr := got.Jobs[0].LastRun
	if lr == nil || len(lr.Machines) != lastRunMachines || lr.Machines[0].Machine != "m000" ||
		lr.MachineCounts[store.StatusSucceeded] != lastRunMachines || lr.MachineCounts[store.StatusRunning] != 2*lastRunMachines {
		t.Errorf("last run = %+v, want %d machines listed and all %d counted", lr, lastRunMachines, 3*lastRunMachines)
	}
}
