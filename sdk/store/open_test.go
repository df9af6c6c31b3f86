package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestOpenOnConfigure(t *testing.T) {
	ctx := context.Background()
	var opened []*fakeStore
	var configs []string
	s := OpenOnConfigure(func(_ context.Context, config []byte) (Store, error) {
		if string(config) == `{"bad":true}` {
			return nil, errors.New("bad config")
		}
		f := &fakeStore{}
		opened = append(opened, f)
		configs = append(configs, string(config))
		return f, nil
	})
	if err := s.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("before Configure: %v, want ErrUnavailable", err)
	}
	if _, err := s.RecordFire(ctx, "j", time.Unix(60, 0), "r0"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("RecordFire before Configure: %v, want ErrUnavailable", err)
	}
	if _, err := s.LastFire(ctx, "j"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("LastFire before Configure: %v, want ErrUnavailable", err)
	}
	if _, err := s.PruneRuns(ctx, time.Unix(60, 0)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("PruneRuns before Configure: %v, want ErrUnavailable", err)
	}
	if _, err := s.AppendAudit(ctx, AuditEntry{At: time.Unix(60, 0)}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("AppendAudit before Configure: %v, want ErrUnavailable", err)
	}
	if _, err := s.ListAudit(ctx, AuditFilter{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ListAudit before Configure: %v, want ErrUnavailable", err)
	}
	if _, err := s.LastRuns(ctx, LastRunsQuery{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("LastRuns before Configure: %v, want ErrUnavailable", err)
	}
	if _, err := s.LastFires(ctx, []string{"j"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("LastFires before Configure: %v, want ErrUnavailable", err)
	}
	res := s.(Batcher).AppendOutputBatch(ctx, []Append{{RunID: "r", Machine: "m"}})
	if len(res) != 1 || !errors.Is(res[0].Err, ErrUnavailable) {
		t.Fatalf("batch before Configure: %+v", res)
	}
	// The other batches too, item by item.
	for name, errs := range map[string][]error{
		"UpdateMachines": s.(MachineBatcher).UpdateMachines(ctx, []MachineChange{{RunID: "r"}, {RunID: "s"}}),
		"UpdateRuns":     s.(RunBatchUpdater).UpdateRuns(ctx, []RunChange{{RunID: "r"}, {RunID: "s"}}),
		"Fires":          errsOf(s.(FireBatcher).Fires(ctx, []Fire{{Job: "j"}, {Job: "k"}}), func(r FireResult) error { return r.Err }),
		"GetRuns":        errsOf(s.(RunBatchReader).GetRuns(ctx, []string{"r", "s"}), func(r RunResult) error { return r.Err }),
	} {
		if len(errs) != 2 || !errors.Is(errs[0], ErrUnavailable) || !errors.Is(errs[1], ErrUnavailable) {
			t.Errorf("%s before Configure: %v, want ErrUnavailable twice", name, errs)
		}
	}
	c := s.(Configurer)
	if err := c.Configure(ctx, []byte(`{"bad":true}`)); err == nil {
		t.Fatal("a refused open configured the store")
	}
	if err := c.Configure(ctx, []byte(`{"path":"a"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRun(ctx, Run{ID: "r1"}); err != nil || opened[0].run.ID != "r1" {
		t.Fatalf("CreateRun after Configure: %v, reached %+v", err, opened[0].run)
	}
	slot := time.Unix(60, 5)
	opened[0].fireOK, opened[0].lastFire = true, slot
	if ok, err := s.RecordFire(ctx, "j", slot, "r1"); err != nil || !ok || opened[0].fire != (fireCall{"j", slot, "r1"}) {
		t.Fatalf("RecordFire after Configure: %v, %v, reached %+v", ok, err, opened[0].fire)
	}
	if last, err := s.LastFire(ctx, "j"); err != nil || !last.Equal(slot) {
		t.Fatalf("LastFire after Configure: %v, %v", last, err)
	}
	opened[0].pruned = 2
	if n, err := s.PruneRuns(ctx, slot); err != nil || n != 2 || !opened[0].pruneBefore.Equal(slot) {
		t.Fatalf("PruneRuns after Configure: %d, %v, reached %v", n, err, opened[0].pruneBefore)
	}
	entry := AuditEntry{At: slot, By: "ops", Action: AuditReload}
	opened[0].auditID, opened[0].audits = 7, []AuditEntry{{ID: 7}}
	if id, err := s.AppendAudit(ctx, entry); err != nil || id != 7 || opened[0].audit != entry {
		t.Fatalf("AppendAudit after Configure: %d, %v, reached %+v", id, err, opened[0].audit)
	}
	if es, err := s.ListAudit(ctx, AuditFilter{By: "ops"}); err != nil || len(es) != 1 || es[0].ID != 7 ||
		opened[0].auditFilter.By != "ops" {
		t.Fatalf("ListAudit after Configure: %+v, %v, reached %+v", es, err, opened[0].auditFilter)
	}
	opened[0].summaries = []RunSummary{{Run: Run{ID: "r1", Job: "j"}}}
	if rs, err := s.LastRuns(ctx, LastRunsQuery{Jobs: []string{"j"}, Machines: 3}); err != nil || len(rs) != 1 ||
		rs[0].Run.ID != "r1" || opened[0].lastRunsQuery.Machines != 3 {
		t.Fatalf("LastRuns after Configure: %+v, %v, reached %+v", rs, err, opened[0].lastRunsQuery)
	}
	opened[0].slots = map[string]time.Time{"j": slot}
	if fires, err := s.LastFires(ctx, []string{"j"}); err != nil || !fires["j"].Equal(slot) ||
		len(opened[0].firesJobs) != 1 {
		t.Fatalf("LastFires after Configure: %v, %v, reached %q", fires, err, opened[0].firesJobs)
	}
	// A store without batches gets the chunks one by one.
	res = s.(Batcher).AppendOutputBatch(ctx, []Append{{RunID: "r1", Machine: "m", Chunk: Chunk{Seq: 0, Data: []byte("x")}}})
	if len(res) != 1 || res[0].Err != nil || len(opened[0].chunks) != 1 {
		t.Fatalf("batch after Configure: %+v, chunks %d", res, len(opened[0].chunks))
	}
	// Configured again (a plugin restart, a reload): the old store closes.
	if err := c.Configure(ctx, []byte(`{"path":"b"}`)); err != nil {
		t.Fatal(err)
	}
	if !opened[0].closed || len(opened) != 2 || configs[1] != `{"path":"b"}` {
		t.Fatalf("reconfigure: first closed %v, opened %d, configs %q", opened[0].closed, len(opened), configs)
	}
	if err := s.Close(); err != nil || !opened[1].closed {
		t.Fatalf("Close: %v, closed %v", err, opened[1].closed)
	}
	if err := s.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after Close: %v, want ErrUnavailable", err)
	}
}

func TestDecodeConfig(t *testing.T) {
	var c struct {
		Path string `json:"path"`
	}
	for _, tc := range []struct {
		in      string
		wantErr bool
	}{{`{"path":"a"}`, false}, {``, false}, {`{"pth":"a"}`, true}, {`[1]`, true}} {
		err := DecodeConfig([]byte(tc.in), &c)
		if (err != nil) != tc.wantErr {
			t.Errorf("DecodeConfig(%q) = %v, want error %v", tc.in, err, tc.wantErr)
		}
	}
}

// errsOf is the errors of a batch's results.
func errsOf[R any](rs []R, err func(R) error) []error {
	errs := make([]error, len(rs))
	for i, r := range rs {
		errs[i] = err(r)
	}
	return errs
}
