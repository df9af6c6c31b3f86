package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// fakeStorePlugin is a plugin block for the fake third-party store, served
// by this test binary given as its path.
func fakeStorePlugin(t *testing.T, name, conf string) config.Plugin {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return config.Plugin{Kind: "store", Name: name, Path: exe, Config: []byte(conf)}
}

func storeLaunches(h *Host, name string) int {
	h.mu.Lock()
	m := h.plugins[key{"store", name}]
	h.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.launches
}

// The memory store, served by a real plugin subprocess and reached through
// Host.Store, passes the store conformance suite.
func TestStoreConformanceAsSubprocess(t *testing.T) {
	sdktest.TestStore(t, func(t *testing.T) store.Store {
		h, _ := newHost(t, fakeStorePlugin(t, "mem", "{}"))
		s, err := h.Store(ctx(t), "mem")
		if err != nil {
			t.Fatalf("Store(mem): %v", err)
		}
		return s
	})
}

func TestStoreErrors(t *testing.T) {
	cases := []struct {
		name    string
		plugins []config.Plugin
		store   string
		want    string
	}{
		{"config refused", []config.Plugin{fakeStorePlugin(t, "mem", `{"fail":"no database"}`)}, "mem", "no database"},
		{"bad config json", []config.Plugin{fakeStorePlugin(t, "mem", `[1]`)}, "mem", "fake store config"},
		{"not declared and not built in", nil, "nosuch", `no store plugin "nosuch"`},
		{"a target is not a store", []config.Plugin{fakePlugin(t, "fake", `{"machines":["a"]}`)}, "fake", `no store plugin "fake"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newHost(t, tc.plugins...)
			_, err := h.Store(ctx(t), tc.store)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Store(%s) = %v, want an error with %q", tc.store, err, tc.want)
			}
		})
	}
}

// A store plugin that dies in the middle of AppendOutput is started again
// and the call retried once (safe: appending is idempotent). The memory
// store forgets everything with its process, so the retry finds no run:
// the store's own ErrNotFound, not a transport error.
func TestStoreRetryWhenPluginDiesMidAppend(t *testing.T) {
	h, _ := newHost(t, fakeStorePlugin(t, "mem", "{}"))
	c := ctx(t)
	s, err := h.Store(c, "mem")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRun(c, store.Run{ID: "r1", Job: "j", Machines: []store.Machine{{Machine: "a"}}}); err != nil {
		t.Fatal(err)
	}
	first, ok := h.PID("store", "mem")
	if !ok {
		t.Fatal("store plugin not running")
	}
	flag := filepath.Join(t.TempDir(), "crash")
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = s.AppendOutput(c, "r1", "a", store.Chunk{Seq: 0, Stream: "crash_once", Data: []byte(flag)})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AppendOutput across a crash = %v, want the restarted store's ErrNotFound", err)
	}
	if n := storeLaunches(h, "mem"); n != 2 {
		t.Errorf("launches = %d, want 2", n)
	}
	second, ok := h.PID("store", "mem")
	if !ok || second == first {
		t.Errorf("pid after the crash %d (running %v), before %d", second, ok, first)
	}
	awaitGone(t, first)
	// The new process works.
	if err := s.CreateRun(c, store.Run{ID: "r2", Job: "j"}); err != nil {
		t.Errorf("CreateRun on the restarted plugin: %v", err)
	}
}

// crashingStore hosts the fake store plugin on a SQLite file, which
// outlives the plugin's processes. crashOnce arms a crash and returns the
// text that sets it off: a run's reason, a machine update's reason or an
// audit entry's detail carrying it makes the plugin die once that write
// is stored, before it answers (see fakeStore).
func crashingStore(t *testing.T) (h *Host, s store.Store, c context.Context, crashOnce func() string) {
	t.Helper()
	dir := t.TempDir()
	h, _ = newHost(t, fakeStorePlugin(t, "lite", fmt.Sprintf(`{"sqlite": %q}`, filepath.Join(dir, "state.db"))))
	c = ctx(t)
	s, err := h.Store(c, "lite")
	if err != nil {
		t.Fatal(err)
	}
	return h, s, c, func() string {
		flag := filepath.Join(dir, "crash")
		if err := os.WriteFile(flag, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return "crash_once:" + flag
	}
}

// TestFireRunRetryMeetsItsOwnRun: the plugin stores a fired run and dies
// before answering. The retry on the restarted plugin finds the slot
// recorded, and the run there is this very run: the answer is true, as
// the first try's would have been, and the slot has one run.
func TestFireRunRetryMeetsItsOwnRun(t *testing.T) {
	h, s, c, crashOnce := crashingStore(t)
	crash := crashOnce()
	slot := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	run := store.Run{ID: "r1", Job: "j", Trigger: store.TriggerSchedule, ScheduledFor: slot,
		Reason: crash, Machines: []store.Machine{{Machine: "a"}}}
	ok, err := s.FireRun(c, run)
	if err != nil || !ok {
		t.Fatalf("FireRun across a crash after the commit = %v, %v; want true", ok, err)
	}
	if n := storeLaunches(h, "lite"); n != 2 {
		t.Fatalf("launches = %d, want 2: the plugin did not die mid-call", n)
	}
	// Another run for the slot is still refused.
	run.ID, run.Reason = "r2", ""
	if ok, err := s.FireRun(c, run); err != nil || ok {
		t.Errorf("FireRun of the same slot again = %v, %v; want false", ok, err)
	}
}

// TestUpdateMachineRetryMeetsItsOwnStatus: the plugin stores a machine's
// final status, asked for with OnlyIfNotFinal, and dies before answering
// (the update went in the client's UpdateMachines batch). The retry on
// the restarted plugin meets the final status, ErrFinal, and the status
// stored is the one asked for: the answer is nil, as the first try's
// would have been. A later OnlyIfNotFinal update is refused as ever.
func TestUpdateMachineRetryMeetsItsOwnStatus(t *testing.T) {
	h, s, c, crashOnce := crashingStore(t)
	if err := s.CreateRun(c, store.Run{ID: "r1", Job: "j", Machines: []store.Machine{{Machine: "a", Status: store.StatusRunning}}}); err != nil {
		t.Fatal(err)
	}
	crash := crashOnce()
	done, why := store.StatusSucceeded, crash
	if err := s.UpdateMachine(c, "r1", "a", store.MachineUpdate{Status: &done, Reason: &why, OnlyIfNotFinal: true}); err != nil {
		t.Fatalf("UpdateMachine across a crash after the commit: %v", err)
	}
	if n := storeLaunches(h, "lite"); n != 2 {
		t.Fatalf("launches = %d, want 2: the plugin did not die mid-call", n)
	}
	failed := store.StatusFailed
	if err := s.UpdateMachine(c, "r1", "a", store.MachineUpdate{Status: &failed, OnlyIfNotFinal: true}); !errors.Is(err, store.ErrFinal) {
		t.Errorf("a later OnlyIfNotFinal update of the final machine: %v, want ErrFinal", err)
	}
	run, err := s.GetRun(c, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if m := run.Machines[0]; m.Status != done || m.Reason != why {
		t.Errorf("machine after the retried update: %s %q, want %s %q", m.Status, m.Reason, done, why)
	}
}

// TestUpdateMachinesRetryMeetsTheirOwnStatuses: as
// TestUpdateMachineRetryMeetsItsOwnStatus, for a batch. The plugin dies
// once a change making a machine final is stored; the whole batch is
// applied again on the restarted plugin. The change that met its own
// status answers nil, the others what they answer on their own: a
// heartbeat nil, and a change of a machine that was final before the
// batch ErrFinal.
func TestUpdateMachinesRetryMeetsTheirOwnStatuses(t *testing.T) {
	h, s, c, crashOnce := crashingStore(t)
	if err := s.CreateRun(c, store.Run{ID: "r1", Job: "j", Machines: []store.Machine{
		{Machine: "a", Status: store.StatusRunning}, {Machine: "b", Status: store.StatusRunning},
		{Machine: "lost", Status: store.StatusLost}}}); err != nil {
		t.Fatal(err)
	}
	crash := crashOnce()
	b, ok := s.(store.MachineBatcher)
	if !ok {
		t.Fatal("the hosted store is not a store.MachineBatcher")
	}
	done, why, failed := store.StatusSucceeded, crash, store.StatusFailed
	hb := time.Now().UTC().Truncate(time.Millisecond)
	errs := b.UpdateMachines(c, []store.MachineChange{
		{RunID: "r1", Machine: "a", Update: store.MachineUpdate{Status: &done, Reason: &why, OnlyIfNotFinal: true}},
		{RunID: "r1", Machine: "b", Update: store.MachineUpdate{LastHeartbeat: &hb, OnlyIfNotFinal: true}},
		{RunID: "r1", Machine: "lost", Update: store.MachineUpdate{Status: &failed, OnlyIfNotFinal: true}},
	})
	if n := storeLaunches(h, "lite"); n != 2 {
		t.Fatalf("launches = %d, want 2: the plugin did not die mid-call", n)
	}
	if len(errs) != 3 || errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], store.ErrFinal) {
		t.Fatalf("UpdateMachines across a crash after a commit: %v, want nil, nil, ErrFinal", errs)
	}
	run, err := s.GetRun(c, "r1")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range run.Machines {
		switch {
		case m.Machine == "a" && (m.Status != done || m.Reason != why),
			m.Machine == "b" && (m.Status != store.StatusRunning || !m.LastHeartbeat.Equal(hb)),
			m.Machine == "lost" && m.Status != store.StatusLost:
			t.Errorf("machine %s after the retried batch: %s %q, heartbeat %s", m.Machine, m.Status, m.Reason, m.LastHeartbeat)
		}
	}
}

// TestAppendAuditRetryMeetsItsOwnEntry: the plugin stores an audit entry
// and dies before answering. The retry on the restarted plugin finds the
// entry there and answers its id: the action is recorded once. An entry
// that differs in one field only is appended as its own.
func TestAppendAuditRetryMeetsItsOwnEntry(t *testing.T) {
	h, s, c, crashOnce := crashingStore(t)
	at := time.Date(2026, 1, 1, 10, 0, 0, 123456789, time.UTC)
	twin := store.AuditEntry{At: at, By: "ops", Action: store.AuditKill, Via: "api", Job: "j", Detail: "crash_once:x",
		Outcome: store.AuditOK}
	first, err := s.AppendAudit(c, twin) // the same but for the path: must not count as the retried one
	if err != nil {
		t.Fatal(err)
	}
	crash := crashOnce()
	e := twin
	e.Detail = crash
	id, err := s.AppendAudit(c, e)
	if err != nil {
		t.Fatalf("AppendAudit across a crash after the commit: %v", err)
	}
	if n := storeLaunches(h, "lite"); n != 2 {
		t.Fatalf("launches = %d, want 2: the plugin did not die mid-call", n)
	}
	got, err := s.ListAudit(c, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != id || got[1].ID != first || got[0].Detail != e.Detail {
		t.Errorf("log after the retried append = %+v; want entry %d (answered) over %d, once each", got, id, first)
	}
}
