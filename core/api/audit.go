package api

import (
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/saltpeter/saltpeter/core/audit"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// auditPageMax bounds one page of GET /api/v1/audit.
const auditPageMax = 1000

// auditedRoutes names the audit action of every route that acts, so that
// a request the guard refuses is recorded as the action it asked for.
// The routes' own actions are recorded by the audited control (package
// audit), which sees what the events socket and a SIGHUP ask too.
var auditedRoutes = map[string]string{
	"POST /api/v1/jobs/{name}/run":                   store.AuditRun,
	"POST /api/v1/jobs/{name}/kill":                  store.AuditKill,
	"POST /api/v1/jobs/{name}/enable":                store.AuditEnable,
	"POST /api/v1/jobs/{name}/disable":               store.AuditDisable,
	"POST /api/v1/jobs/{name}/reset":                 store.AuditReset,
	"POST /api/v1/runs/{id}/kill":                    store.AuditKill,
	"POST /api/v1/runs/{id}/machines/{machine}/kill": store.AuditKill,
	"POST /api/v1/runs/{id}/signal":                  store.AuditSignal,
	"POST /api/v1/reload":                            store.AuditReload,
	"PUT /api/v1/maintenance":                        store.AuditMaintenanceSet,
	"DELETE /api/v1/maintenance":                     store.AuditMaintenanceReset,
}

// auditActions are what ?action= takes.
var auditActions = []string{store.AuditRun, store.AuditKill, store.AuditSignal, store.AuditEnable, store.AuditDisable,
	store.AuditReset, store.AuditMaintenanceSet, store.AuditMaintenanceReset, store.AuditReload, store.AuditSignIn,
	store.AuditSignOut}

// remoteOf is the client's address as this core saw it. A proxy's
// X-Forwarded-For is not trusted: any client can send one.
func remoteOf(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// auditRefused records a request the guard refused for its role.
func (a *API) auditRefused(r *http.Request, p principal, e *Error) {
	action, ok := auditedRoutes[r.Pattern]
	if !ok {
		return
	}
	a.audit.Record(r.Context(), store.AuditEntry{By: p.Name, Action: action, Via: audit.ViaAPI, Remote: remoteOf(r),
		Job: r.PathValue("name"), RunID: r.PathValue("id"), Machine: r.PathValue("machine"),
		Outcome: store.AuditRefused, Error: e.Message})
}

// auditEntryJSON is one entry of GET /api/v1/audit.
type auditEntryJSON struct {
	ID      int64   `json:"id"`
	At      *string `json:"at"`
	By      string  `json:"by"`
	Action  string  `json:"action"`
	Via     string  `json:"via"`
	Remote  string  `json:"remote"`
	Job     string  `json:"job"`
	RunID   string  `json:"run_id"`
	Machine string  `json:"machine"`
	Detail  string  `json:"detail"`
	Outcome string  `json:"outcome"`
	Error   string  `json:"error"`
}

// listAudit serves GET /api/v1/audit?job=&by=&action=&before=&limit=,
// newest first; next_before pages on, null on the last page.
func (a *API) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.AuditFilter{Job: q.Get("job"), By: q.Get("by"), Action: q.Get("action")}
	if f.Action != "" && !slices.Contains(auditActions, f.Action) {
		a.writeError(w, badParam("action", f.Action, "want one of "+strings.Join(auditActions, ", ")))
		return
	}
	if v := q.Get("before"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id < 1 {
			a.writeError(w, badParam("before", v, "want the id of an entry, a whole number from 1"))
			return
		}
		f.BeforeID = id
	}
	limit, e := countParam(q, "limit", store.DefaultAuditLimit, auditPageMax)
	if e != nil {
		a.writeError(w, e)
		return
	}
	// One more than asked tells whether an older page exists without a
	// second query.
	f.Limit = limit + 1
	entries, err := a.store.ListAudit(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var next *int64
	if len(entries) > limit {
		entries = entries[:limit]
		next = &entries[limit-1].ID
	}
	out := make([]auditEntryJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, auditEntryJSON{ID: e.ID, At: ts(e.At), By: e.By, Action: e.Action, Via: e.Via, Remote: e.Remote,
			Job: e.Job, RunID: e.RunID, Machine: e.Machine, Detail: e.Detail, Outcome: e.Outcome, Error: e.Error})
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"entries": out, "next_before": next})
}
