package notifier_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/notifier"
)

func intp(i int) *int { return &i }

// fullEvent sets every field, with times in another zone than UTC.
func fullEvent() notifier.Event {
	bucharest := time.FixedZone("EET", 2*3600)
	return notifier.Event{
		ID:           "01J9ZQ4T3V6M2X8K5R7B0C1D2E",
		Kind:         notifier.EventFailure,
		Job:          "backup-db",
		Group:        "databases",
		RunID:        "r-42",
		Status:       "failed",
		Trigger:      "schedule",
		ScheduledFor: time.Date(2026, 3, 1, 4, 30, 0, 0, bucharest),
		StartedAt:    time.Date(2026, 3, 1, 4, 30, 1, 0, bucharest),
		FinishedAt:   time.Date(2026, 3, 1, 4, 41, 7, 0, bucharest),
		Machines: []notifier.MachineResult{
			{Machine: "db3", Status: "failed", ExitCode: intp(2)},
			{Machine: "db7", Status: "lost", Reason: "no heartbeat for 30s"},
			{Machine: "db1", Status: "succeeded", ExitCode: intp(0)},
		},
		MachinesOmitted: 9,
		Counts:          map[string]int{"failed": 1, "lost": 1, "succeeded": 10},
		Message:         "backup-db failed on 2 of 12 machines (db3: exit 2, db7: lost)",
		Core:            "https://cron.example.com",
		At:              time.Date(2026, 3, 1, 4, 41, 7, 0, bucharest),
		Attempt:         3,
	}
}

// TestEventJSON: the schema's names and forms, and a round trip that
// keeps every field (times come back in UTC).
func TestEventJSON(t *testing.T) {
	ev := fullEvent()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": ev.ID, "kind": "failure", "job": "backup-db", "group": "databases",
		"run_id": "r-42", "status": "failed", "trigger": "schedule",
		"scheduled_for": "2026-03-01T02:30:00Z", "started_at": "2026-03-01T02:30:01Z",
		"finished_at": "2026-03-01T02:41:07Z", "at": "2026-03-01T02:41:07Z",
		"machines_omitted": float64(9), "message": ev.Message,
		"core": "https://cron.example.com", "attempt": float64(3),
	}
	for k, v := range want {
		if !reflect.DeepEqual(fields[k], v) {
			t.Errorf("%s = %#v, want %#v", k, fields[k], v)
		}
	}
	machines, _ := fields["machines"].([]any)
	if len(machines) != 3 {
		t.Fatalf("machines = %#v", fields["machines"])
	}
	if m := machines[0].(map[string]any); m["machine"] != "db3" || m["status"] != "failed" || m["exit_code"] != float64(2) {
		t.Errorf("machines[0] = %#v", m)
	}
	if m := machines[1].(map[string]any); m["reason"] != "no heartbeat for 30s" || m["exit_code"] != nil {
		t.Errorf("machines[1] = %#v (no exit code: the key is left out)", m)
	}
	if m := machines[2].(map[string]any); m["exit_code"] != float64(0) {
		t.Errorf("machines[2] = %#v: exit code 0 must be written", m)
	}
	if c := fields["counts"].(map[string]any); c["succeeded"] != float64(10) {
		t.Errorf("counts = %#v", c)
	}
	if len(fields) != len(want)+2 {
		t.Errorf("%d keys, want %d: %s", len(fields), len(want)+2, b)
	}

	var back notifier.Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	for _, tm := range []*time.Time{&ev.ScheduledFor, &ev.StartedAt, &ev.FinishedAt, &ev.At} {
		*tm = tm.UTC()
	}
	if !reflect.DeepEqual(back, ev) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, ev)
	}
}

// A missed event has no run: the run's times are left out, the run's
// strings are there and empty, and it reads back as it was.
func TestMissedEventJSON(t *testing.T) {
	ev := notifier.Event{ID: "m-1", Kind: notifier.EventMissed, Job: "nightly",
		At: time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC), Attempt: 1}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"id":"m-1","kind":"missed","job":"nightly","group":"","run_id":"","status":"","trigger":"","message":"","core":"","attempt":1,"at":"2026-03-02T03:00:00Z"}`
	if string(b) != want {
		t.Errorf("JSON:\n got %s\nwant %s", b, want)
	}
	var back notifier.Event
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, ev) {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, ev)
	}
}

func TestEventUnmarshalErrors(t *testing.T) {
	tests := []struct{ json, want string }{
		{`{"at":"yesterday"}`, "event at:"},
		{`{"started_at":"2026-03-01 02:30:00"}`, "event started_at:"},
		{`{"attempt":"one"}`, "cannot unmarshal"},
	}
	for _, tt := range tests {
		var ev notifier.Event
		err := json.Unmarshal([]byte(tt.json), &ev)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Unmarshal(%s) = %v, want an error with %q", tt.json, err, tt.want)
		}
	}
}

func TestEventKinds(t *testing.T) {
	want := []string{"success", "failure", "timeout", "soft_timeout", "killed", "lost", "not_started", "missed", "recovered"}
	if len(notifier.EventKinds) != len(want) {
		t.Fatalf("EventKinds = %q", notifier.EventKinds)
	}
	for i, k := range notifier.EventKinds {
		if string(k) != want[i] || !k.Valid() {
			t.Errorf("EventKinds[%d] = %q (valid %v), want %q", i, k, k.Valid(), want[i])
		}
	}
	if notifier.EventKind("exploded").Valid() {
		t.Error(`"exploded" is valid`)
	}
}

func TestRunURL(t *testing.T) {
	tests := []struct{ core, run, want string }{
		{"https://cron.example.com", "r1", "https://cron.example.com/api/v1/runs/r1"},
		{"https://cron.example.com/sp/", "r1", "https://cron.example.com/sp/api/v1/runs/r1"},
		{"", "r1", ""},
		{"https://cron.example.com", "", ""},
	}
	for _, tt := range tests {
		if got := (notifier.Event{Core: tt.core, RunID: tt.run}).RunURL(); got != tt.want {
			t.Errorf("RunURL(%q, %q) = %q, want %q", tt.core, tt.run, got, tt.want)
		}
	}
}
