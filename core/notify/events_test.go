package notify

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/store"
)

func exit(c int) *int { return &c }

func TestForRun(t *testing.T) {
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	job := &config.Job{Name: "backup", Group: "db", Notify: []config.Notify{
		{Notifier: "ops", On: []string{"failure", "timeout", "recovered"}},
		{Notifier: "chat", On: []string{"success", "failure"}},
	}}
	run := func(status string, ms ...store.Machine) store.Run {
		return store.Run{ID: "r1", Job: "backup", Trigger: "schedule", Status: status, StartedAt: now.Add(-time.Minute), FinishedAt: now, Machines: ms}
	}
	ok := store.Machine{Machine: "db1", Status: store.StatusSucceeded, ExitCode: exit(0)}
	tests := []struct {
		name string
		run  store.Run
		prev string
		want []string // notifier/kind
		msg  string   // in every event's message
	}{
		{"success", run(store.StatusSucceeded, ok), store.StatusSucceeded, []string{"chat/success"}, "backup succeeded on 1 machine"},
		{"first success", run(store.StatusSucceeded, ok), "", []string{"chat/success"}, "succeeded"},
		{"recovered", run(store.StatusSucceeded, ok), store.StatusFailed, []string{"ops/recovered", "chat/success"}, "succeeded on 1 machine"},
		{"failed", run(store.StatusFailed, ok, store.Machine{Machine: "db2", Status: store.StatusFailed, ExitCode: exit(2)}), "",
			[]string{"ops/failure", "chat/failure"}, "backup failed on 1 of 2 machines (db2: exit 2)"},
		{"timeout: its own kind where asked", run(store.StatusTimeout, store.Machine{Machine: "db1", Status: store.StatusTimeout, ExitCode: exit(124), Reason: "timeout"}), "",
			[]string{"ops/timeout", "chat/failure"}, "timed out"},
		{"lost is a failure", run(store.StatusLost, store.Machine{Machine: "db1", Status: store.StatusLost}), "",
			[]string{"ops/failure", "chat/failure"}, "db1: lost"},
		{"skipped notifies nothing but missed", run(store.StatusSkipped, store.Machine{Machine: "db1", Status: store.StatusSkipped}), "", nil, ""},
		{"running notifies nothing", run(store.StatusRunning), "", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns, err := ForRun(job, tc.run, tc.prev, "https://cron.example", now)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range ns {
				got = append(got, n.Notifier+"/"+n.Kind)
				if n.ID != "r1/"+n.Notifier+"/"+n.Kind || n.Job != "backup" || n.RunID != "r1" || !n.DueAt.Equal(now) {
					t.Errorf("entry %+v", n)
				}
				var ev notifier.Event
				if err := json.Unmarshal(n.Event, &ev); err != nil {
					t.Fatal(err)
				}
				if ev.ID != n.ID || string(ev.Kind) != n.Kind || ev.Group != "db" || ev.Status != tc.run.Status ||
					ev.RunURL() != "https://cron.example/api/v1/runs/r1" || !strings.Contains(ev.Message, tc.msg) {
					t.Errorf("event %+v, want message containing %q", ev, tc.msg)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("notifications %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEventListsFailingMachinesFirstAndCaps: a run on many machines lists
// the failing ones first and at most maxMachines, counting every one.
func TestEventListsFailingMachinesFirstAndCaps(t *testing.T) {
	var ms []store.Machine
	for i := range 50 {
		st := store.StatusSucceeded
		if i%10 == 7 {
			st = store.StatusFailed
		}
		ms = append(ms, store.Machine{Machine: fmt.Sprintf("m%02d", i), Status: st, ExitCode: exit(0)})
	}
	ev := runEvent(&config.Job{Name: "j"}, store.Run{ID: "r", Status: store.StatusFailed, Machines: ms}, notifier.EventFailure, "", "", time.Now())
	if len(ev.Machines) != maxMachines || ev.MachinesOmitted != 50-maxMachines || ev.Counts[store.StatusFailed] != 5 || ev.Counts[store.StatusSucceeded] != 45 {
		t.Fatalf("%d listed, %d omitted, counts %v", len(ev.Machines), ev.MachinesOmitted, ev.Counts)
	}
	for i := range 5 {
		if ev.Machines[i].Status != store.StatusFailed {
			t.Fatalf("machine %d listed is %+v, want the failing ones first", i, ev.Machines[i])
		}
	}
	if !strings.Contains(ev.Message, "on 5 of 50 machines") || !strings.HasSuffix(ev.Message, ", ...)") {
		t.Errorf("message %q", ev.Message)
	}
}

// A run whose machines were all under maintenance is missed, for the
// blocks that ask.
func TestSkippedRunIsMissed(t *testing.T) {
	job := &config.Job{Name: "j", Notify: []config.Notify{{Notifier: "ops", On: []string{"missed"}}}}
	ns, err := ForRun(job, store.Run{ID: "r", Status: store.StatusSkipped, Machines: []store.Machine{{Machine: "db1", Status: store.StatusSkipped}}}, "", "", time.Now())
	if err != nil || len(ns) != 1 || ns[0].ID != "r/ops/missed" {
		t.Fatalf("skipped run: %+v %v", ns, err)
	}
	var ev notifier.Event
	if err := json.Unmarshal(ns[0].Event, &ev); err != nil || !strings.Contains(ev.Message, "under maintenance") {
		t.Fatalf("event %+v %v", ev, err)
	}
}

func TestForSoftTimeoutAndMissed(t *testing.T) {
	now := time.Now()
	job := &config.Job{Name: "j", SoftTimeout: time.Hour, Notify: []config.Notify{{Notifier: "ops", On: []string{"soft_timeout", "missed"}}, {Notifier: "quiet", On: []string{"failure"}}}}
	ns, err := ForSoftTimeout(job, store.Run{ID: "r9", Status: store.StatusRunning}, "", now)
	if err != nil || len(ns) != 1 || ns[0].ID != "r9/ops/soft_timeout" || ns[0].Kind != "soft_timeout" {
		t.Fatalf("soft timeout: %+v %v", ns, err)
	}
	ns, err = ForMissed(job, "gap/100", time.Unix(100, 0), "j has not succeeded for 26h", "", now)
	if err != nil || len(ns) != 1 || ns[0].ID != "j/ops/missed/gap/100" || ns[0].RunID != "" {
		t.Fatalf("missed: %+v %v", ns, err)
	}
}
