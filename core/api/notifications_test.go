package api

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

func TestListNotifications(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)
	ctx := context.Background()
	if err := e.store.EnqueueNotifications(ctx, []store.Notification{
		{ID: "r1/ops/failure", Notifier: "ops", Job: "backup", RunID: "r1", Kind: "failure", Event: []byte(`{"id":"r1/ops/failure"}`), CreatedAt: t0},
		{ID: "backup/ops/missed/gap/1", Notifier: "ops", Job: "backup", Kind: "missed", Event: []byte(`{"id":"backup/ops/missed/gap/1"}`), CreatedAt: t0.Add(time.Minute)},
		{ID: "r2/ops/failure", Notifier: "ops", Job: "other", RunID: "r2", Kind: "failure", Event: []byte(`not json`), CreatedAt: t0.Add(2 * time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	ns, err := e.store.ClaimNotifications(ctx, store.ClaimRequest{Owner: "core", Now: t0.Add(time.Hour), Lease: time.Minute, Limit: 1})
	if err != nil || len(ns) != 1 {
		t.Fatal(ns, err)
	}
	if err := e.store.FinishNotification(ctx, ns[0].ID, "core", store.NotificationResult{Final: true, Error: "404 from the receiver", At: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	r := e.do(req{Method: "GET", Path: "/api/v1/notifications?state=failed"})
	wantStatus(t, r, 200)
	want := map[string]any{"notifications": []any{map[string]any{
		"id": "r1/ops/failure", "notifier": "ops", "job": "backup", "run_id": "r1", "kind": "failure", "state": "failed",
		"attempts": float64(1), "last_error": "404 from the receiver", "created_at": "2025-03-01T03:00:00Z",
		"due_at": "2025-03-01T03:00:00Z", "delivered_at": nil, "event": map[string]any{"id": "r1/ops/failure"},
	}}}
	if got := r.JSON(t); !reflect.DeepEqual(got, want) {
		t.Errorf("failed notifications =\n%v\nwant\n%v", got, want)
	}

	r = e.do(req{Method: "GET", Path: "/api/v1/notifications?job=other"})
	wantStatus(t, r, 200)
	got := r.JSON(t)["notifications"].([]any)
	if len(got) != 1 || got[0].(map[string]any)["event"] != nil {
		t.Errorf("job other: %v, want one, its event null (not JSON)", got)
	}
	r = e.do(req{Method: "GET", Path: "/api/v1/notifications"})
	if n := len(r.JSON(t)["notifications"].([]any)); n != 3 {
		t.Errorf("%d notifications, want 3", n)
	}
	wantError(t, e.do(req{Method: "GET", Path: "/api/v1/notifications?state=lost"}), 400, CodeBadRequest)
}
