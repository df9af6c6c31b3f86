package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/sdk/store"
)

var t0 = time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)

// seedRuns stores five runs of two jobs, an hour apart, r1 oldest.
func seedRuns(e *env) {
	e.t.Helper()
	for i, s := range []struct{ job, status string }{
		{"backup", store.StatusSucceeded}, {"backup", store.StatusFailed}, {"manual", store.StatusSucceeded},
		{"backup", store.StatusSucceeded}, {"backup", store.StatusRunning},
	} {
		start := t0.Add(time.Duration(i) * time.Hour)
		run := store.Run{ID: fmt.Sprintf("r%d", i+1), Job: s.job, Trigger: store.TriggerSchedule,
			ScheduledFor: start, StartedAt: start, Status: s.status,
			Machines: []store.Machine{{Machine: "db1", Status: s.status}}}
		if store.Final(s.status) {
			run.FinishedAt = start.Add(time.Minute)
		}
		e.addRun(run)
	}
}

func runIDs(t *testing.T, r response) []string {
	t.Helper()
	var got struct {
		Runs []struct {
			ID string `json:"id"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatalf("%v: %s", err, r.Body)
	}
	ids := []string{}
	for _, run := range got.Runs {
		ids = append(ids, run.ID)
	}
	return ids
}

func TestListRuns(t *testing.T) {
	e := newEnv(t)
	seedRuns(e)
	tests := []struct {
		query  string
		status int
		want   []string
	}{
		{"", 200, []string{"r5", "r4", "r3", "r2", "r1"}},
		{"?job=backup", 200, []string{"r5", "r4", "r2", "r1"}},
		{"?job=backup&status=succeeded", 200, []string{"r4", "r1"}},
		{"?status=active", 200, []string{"r5"}},
		{"?limit=2", 200, []string{"r5", "r4"}},
		{"?limit=5000", 200, []string{"r5", "r4", "r3", "r2", "r1"}},
		{"?before=2025-03-01T05:00:00Z", 200, []string{"r2", "r1"}},
		{"?before=2025-03-01T07:00:00%2B02:00", 200, []string{"r2", "r1"}},
		{"?before=r3&limit=1", 200, []string{"r2"}},
		{"?job=nope", 200, []string{}},
		{"?limit=0", 400, nil},
		{"?limit=ten", 400, nil},
		{"?status=weird", 400, nil},
		{"?before=yesterday", 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := e.do(req{Method: "GET", Path: "/api/v1/runs" + tt.query})
			if tt.status != 200 {
				wantError(t, r, tt.status, CodeBadRequest)
				return
			}
			wantStatus(t, r, 200)
			if got := runIDs(t, r); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("runs = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGetRun(t *testing.T) {
	e := newEnv(t)
	e.addRun(store.Run{
		ID: "r1", Job: "backup", Trigger: store.TriggerManual, ScheduledFor: t0, StartedAt: t0,
		Status: store.StatusRunning, RequestedBy: "deployer",
		Actions: []store.Action{
			{Kind: "signal", Signal: "SIGSTOP", By: "ops", At: t0.Add(time.Second)},
			{Kind: "kill", Machine: "db1", Signal: "SIGINT", Grace: 10 * time.Second, By: "deployer", At: t0.Add(2 * time.Second)},
			{Kind: store.ActionSoftTimeout, By: "core", At: t0.Add(3 * time.Second)},
		},
		Machines: []store.Machine{
			{Machine: "db1", Status: store.StatusFailed, ExitCode: ptr(2), Reason: "exit", PID: 4242,
				DispatchedAt: t0.Add(-2 * time.Second), ConnectedAt: t0.Add(-time.Second), StartedAt: t0, FinishedAt: t0.Add(90 * time.Second), LastHeartbeat: t0.Add(80 * time.Second),
				WrapperVersion: "2.0.1", Protocol: 2},
			{Machine: "db2", Status: store.StatusPending},
		},
	})
	e.appendOutput("r1", "db1", "stdout", []byte("hello"))
	r := e.do(req{Method: "GET", Path: "/api/v1/runs/r1"})
	wantStatus(t, r, 200)
	want := map[string]any{
		"id": "r1", "job": "backup", "trigger": "manual",
		"scheduled_for": "2025-03-01T03:00:00Z", "started_at": "2025-03-01T03:00:00Z", "finished_at": nil,
		"status": "running", "reason": "", "requested_by": "deployer", "killed_by": "", "killed_at": nil,
		"soft_timeout_passed": true,
		"actions": []any{
			map[string]any{"kind": "signal", "signal": "SIGSTOP", "grace": nil, "by": "ops", "at": "2025-03-01T03:00:01Z"},
			map[string]any{"kind": "kill", "machine": "db1", "signal": "SIGINT", "grace": "10s", "by": "deployer", "at": "2025-03-01T03:00:02Z"},
		},
		"machines": []any{
			map[string]any{"machine": "db1", "status": "failed", "exit_code": float64(2), "reason": "exit",
				"signal_name": "", "error": "", "pid": float64(4242),
				"dispatched_at": "2025-03-01T02:59:58Z", "connected_at": "2025-03-01T02:59:59Z",
				"started_at": "2025-03-01T03:00:00Z", "finished_at": "2025-03-01T03:01:30Z",
				"last_heartbeat": "2025-03-01T03:01:20Z", "wrapper_version": "2.0.1", "protocol": float64(2),
				"output_bytes": float64(5), "output_dropped_bytes": float64(0), "late_exit_code": nil},
			map[string]any{"machine": "db2", "status": "pending", "exit_code": nil, "reason": "",
				"signal_name": "", "error": "", "pid": nil, "dispatched_at": nil, "connected_at": nil,
				"started_at": nil, "finished_at": nil, "last_heartbeat": nil, "wrapper_version": "",
				"protocol": float64(0), "output_bytes": float64(0), "output_dropped_bytes": float64(0), "late_exit_code": nil},
		},
	}
	if got := r.JSON(t); !reflect.DeepEqual(got, want) {
		t.Errorf("run =\n%v\nwant\n%v", got, want)
	}
	wantError(t, e.do(req{Method: "GET", Path: "/api/v1/runs/nope"}), 404, CodeRunNotFound)
}

func TestKillRunAndMachine(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		body   string
		err    error
		status int
		code   string
		want   call
	}{
		{"run", "/api/v1/runs/r1/kill", "", nil, 202, "", call{Method: "Kill", RunID: "r1", By: "local"}},
		{"run with overrides", "/api/v1/runs/r1/kill", `{"signal":"SIGQUIT","grace":"1m"}`, nil, 202, "",
			call{Method: "Kill", RunID: "r1", Signal: "SIGQUIT", Grace: time.Minute, By: "local"}},
		{"machine", "/api/v1/runs/r1/machines/db1/kill", "", nil, 202, "", call{Method: "Kill", RunID: "r1", Machine: "db1", By: "local"}},
		{"finished run", "/api/v1/runs/r1/kill", "", fmt.Errorf("kill r1: %w", control.ErrFinished), 409, CodeFinished, call{}},
		{"unknown run", "/api/v1/runs/nope/kill", "", fmt.Errorf("kill: %w", control.ErrUnknownRun), 404, CodeRunNotFound, call{}},
		{"unknown machine", "/api/v1/runs/r1/machines/db9/kill", "", fmt.Errorf("kill: %w", control.ErrUnknownMachine), 404, CodeMachineNotFound, call{}},
		{"unknown run of machine", "/api/v1/runs/nope/machines/db1/kill", "", fmt.Errorf("kill: %w", control.ErrUnknownRun), 404, CodeRunNotFound, call{}},
		{"garbage", "/api/v1/runs/r1/kill", "kill it", nil, 400, CodeBadJSON, call{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.ctl.killed = []string{"r1"}
			e.ctl.setErr("Kill", tt.err)
			r := e.do(req{Method: "POST", Path: tt.path, Body: tt.body})
			if tt.code != "" {
				wantError(t, r, tt.status, tt.code)
				return
			}
			wantStatus(t, r, 202)
			if c := e.ctl.Calls("Kill"); len(c) != 1 || c[0] != tt.want {
				t.Errorf("Kill calls = %+v, want %+v", c, tt.want)
			}
			if v := r.JSON(t); !reflect.DeepEqual(v["runs"], []any{"r1"}) {
				t.Errorf("body = %s", r.Body)
			}
		})
	}
}

func TestSignal(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		err    error
		status int
		code   string
		says   string // in the error sentence
		want   call
	}{
		{"stop", `{"signal":"SIGSTOP"}`, nil, 202, "", "", call{Method: "Signal", RunID: "r1", Signal: "SIGSTOP", By: "local"}},
		{"short name, one machine", `{"signal":"cont","machine":"db2"}`, nil, 202, "", "", call{Method: "Signal", RunID: "r1", Machine: "db2", Signal: "SIGCONT", By: "local"}},
		{"SIGKILL", `{"signal":"SIGKILL"}`, nil, 400, CodeBadRequest, "kill", call{}},
		{"KILL", `{"signal":"kill"}`, nil, 400, CodeBadRequest, "kill", call{}},
		{"unknown signal", `{"signal":"SIGFOO"}`, nil, 400, CodeBadRequest, "SIGFOO", call{}},
		{"no signal", `{}`, nil, 400, CodeBadRequest, "signal", call{}},
		{"empty body", ``, nil, 400, CodeBadJSON, "empty", call{}},
		{"garbage", `{"signal":"SIGSTOP",}`, nil, 400, CodeBadJSON, "byte 21", call{}},
		{"unknown field", `{"signal":"SIGSTOP","machines":["a"]}`, nil, 400, CodeBadJSON, "machines", call{}},
		{"finished", `{"signal":"SIGSTOP"}`, fmt.Errorf("signal: %w", control.ErrFinished), 409, CodeFinished, "", call{}},
		{"unknown machine", `{"signal":"SIGSTOP","machine":"db9"}`, fmt.Errorf("signal: %w", control.ErrUnknownMachine), 404, CodeMachineNotFound, "db9", call{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.ctl.setErr("Signal", tt.err)
			r := e.do(req{Method: "POST", Path: "/api/v1/runs/r1/signal", Body: tt.body})
			if tt.code != "" {
				v := wantError(t, r, tt.status, tt.code)
				if !strings.Contains(v["error"].(string), tt.says) {
					t.Errorf("error %q does not say %q", v["error"], tt.says)
				}
				if tt.err == nil && len(e.ctl.Calls("Signal")) != 0 {
					t.Error("a refused signal reached Control")
				}
				return
			}
			wantStatus(t, r, 202)
			if c := e.ctl.Calls("Signal"); len(c) != 1 || c[0] != tt.want {
				t.Errorf("Signal calls = %+v, want %+v", c, tt.want)
			}
		})
	}
}
