package api

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// notificationStates are what ?state= takes.
var notificationStates = []string{store.NotificationPending, store.NotificationDelivered, store.NotificationFailed}

// notificationJSON is one entry of the outbox: what was to be told, to
// which notifier, and how its delivery went. event is the event as the
// notifier got it (docs/notifications.md), null if it does not decode.
type notificationJSON struct {
	ID          string          `json:"id"`
	Notifier    string          `json:"notifier"`
	Job         string          `json:"job"`
	RunID       string          `json:"run_id"`
	Kind        string          `json:"kind"`
	State       string          `json:"state"`
	Attempts    int             `json:"attempts"`
	LastError   string          `json:"last_error"`
	CreatedAt   *string         `json:"created_at"`
	DueAt       *string         `json:"due_at"`
	DeliveredAt *string         `json:"delivered_at"`
	Event       json.RawMessage `json:"event"`
}

// listNotifications serves GET /api/v1/notifications?state=&job=&limit=,
// newest first: how an operator sees what the core told, and what it
// failed to tell (state=failed) after every attempt.
func (a *API) listNotifications(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.NotificationFilter{Job: q.Get("job"), State: q.Get("state"), Limit: runsDefault}
	if f.State != "" && !slices.Contains(notificationStates, f.State) {
		a.writeError(w, badParam("state", f.State, "want one of pending, delivered, failed"))
		return
	}
	limit, e := countParam(q, "limit", runsDefault, runsMax)
	if e != nil {
		a.writeError(w, e)
		return
	}
	f.Limit = limit
	ns, err := a.store.ListNotifications(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]notificationJSON, 0, len(ns))
	for _, n := range ns {
		nj := notificationJSON{ID: n.ID, Notifier: n.Notifier, Job: n.Job, RunID: n.RunID, Kind: n.Kind, State: n.State,
			Attempts: n.Attempts, LastError: n.LastError, CreatedAt: ts(n.CreatedAt), DueAt: ts(n.DueAt),
			DeliveredAt: ts(n.DeliveredAt), Event: json.RawMessage("null")}
		if json.Valid(n.Event) {
			nj.Event = n.Event
		}
		out = append(out, nj)
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"notifications": out})
}
