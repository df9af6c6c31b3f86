package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/saltpeter/saltpeter/core/audit"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// withAudit records actions as the core does: the control audited, and
// the API given the log for what it refuses itself.
func withAudit(c *Config) {
	log := audit.New(c.Store, nil, c.Now)
	c.Audit = log
	c.Control = audit.Control(c.Control, log)
}

func newAuditEnv(t *testing.T) *env {
	t.Helper()
	return newEnv(t, withTokens, withAudit)
}

type auditPage struct {
	Entries    []auditEntryJSON `json:"entries"`
	NextBefore *int64           `json:"next_before"`
}

func (e *env) audit(query string) auditPage {
	e.t.Helper()
	r := e.do(req{Method: "GET", Path: "/api/v1/audit" + query, Auth: readSecret})
	wantStatus(e.t, r, 200)
	var p auditPage
	if err := json.Unmarshal(r.Body, &p); err != nil {
		e.t.Fatalf("audit page: %v\n%s", err, r.Body)
	}
	return p
}

// strip drops what a test cannot predict: the id.
func strip(es []auditEntryJSON) []auditEntryJSON {
	out := slices.Clone(es)
	for i := range out {
		out[i].ID = 0
	}
	return out
}

func TestAuditRecordsAPIActions(t *testing.T) {
	e := newAuditEnv(t)
	e.ctl.killed = []string{"r-running"}
	wantStatus(t, e.do(req{Method: "POST", Path: "/api/v1/jobs/backup/kill", Auth: opSecret,
		Body: `{"signal":"SIGINT","grace":"10s"}`}), 202)
	wantError(t, e.do(req{Method: "POST", Path: "/api/v1/jobs/backup/kill", Auth: readSecret}), 403, CodeForbidden)
	wantError(t, e.do(req{Method: "POST", Path: "/api/v1/jobs/nosuch/disable", Auth: opSecret}), 404, CodeJobNotFound)
	wantStatus(t, e.do(req{Method: "DELETE", Path: "/api/v1/maintenance", Auth: opSecret}), 200)

	at := ts(e.clock())
	want := []auditEntryJSON{
		{At: at, By: "deployer", Action: store.AuditMaintenanceReset, Via: "api", Remote: "127.0.0.1", Outcome: store.AuditOK},
		{At: at, By: "deployer", Action: store.AuditDisable, Via: "api", Remote: "127.0.0.1", Job: "nosuch",
			Outcome: store.AuditRefused, Error: "setenabled nosuch: unknown job"},
		{At: at, By: "viewer", Action: store.AuditKill, Via: "api", Remote: "127.0.0.1", Job: "backup",
			Outcome: store.AuditRefused, Error: `Token "viewer" has the read role, which may only read; POST needs operate.`},
		{At: at, By: "deployer", Action: store.AuditKill, Via: "api", Remote: "127.0.0.1", Job: "backup",
			Detail: "signal SIGINT, grace 10s; runs r-running", Outcome: store.AuditOK},
	}
	got := e.audit("")
	if g := strip(got.Entries); !equalEntries(g, want) {
		t.Errorf("audit log\n got %s\nwant %s", dump(g), dump(want))
	}
	if got.NextBefore != nil {
		t.Errorf("next_before = %d on the only page, want null", *got.NextBefore)
	}
}

func equalEntries(a, b []auditEntryJSON) bool {
	return slices.EqualFunc(a, b, func(x, y auditEntryJSON) bool {
		xa, ya := "", ""
		if x.At != nil {
			xa = *x.At
		}
		if y.At != nil {
			ya = *y.At
		}
		x.At, y.At = nil, nil
		return x == y && xa == ya
	})
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func TestAuditRecordsSocketCommands(t *testing.T) {
	e := newAuditEnv(t)
	op := e.socketFor(http.Header{"Authorization": {"Bearer " + opSecret}})
	if r := command(t, op, `{"killCron":"backup"}`); r["error"] != nil {
		t.Fatalf("operate killCron: %v", r)
	}
	ro := e.socketFor(http.Header{"Authorization": {"Bearer " + readSecret}})
	if r := command(t, ro, `{"run":"backup"}`); r["code"] != CodeForbidden {
		t.Fatalf("read run = %v, want %s", r, CodeForbidden)
	}
	got := e.audit("").Entries
	if len(got) != 2 {
		t.Fatalf("entries = %s, want two", dump(got))
	}
	if g := got[1]; g.By != "deployer" || g.Action != store.AuditKill || g.Via != audit.ViaEvents || g.Job != "backup" || g.Outcome != store.AuditOK {
		t.Errorf("operate killCron entry = %+v", g)
	}
	if g := got[0]; g.By != "viewer" || g.Action != store.AuditRun || g.Via != audit.ViaEvents || g.Job != "backup" ||
		g.Outcome != store.AuditRefused || !strings.Contains(g.Error, "read role") {
		t.Errorf("read run entry = %+v", g)
	}
}

func TestAuditRecordsSessions(t *testing.T) {
	e := newAuditEnv(t)
	r := e.do(req{Method: "POST", Path: "/api/v1/session", Body: `{"token":"` + opSecret + `"}`})
	wantStatus(t, r, 200)
	var cookie string
	for _, c := range r.Header.Values("Set-Cookie") {
		if v, ok := strings.CutPrefix(c, SessionCookie+"="); ok {
			cookie, _, _ = strings.Cut(v, ";")
		}
	}
	if cookie == "" {
		t.Fatalf("no session cookie in %v", r.Header)
	}
	wantError(t, e.do(req{Method: "POST", Path: "/api/v1/session", Body: `{"token":"wrong"}`}), 401, CodeUnauthorized)
	// Anyone may drop a cookie: only a valid session's end is recorded.
	wantStatus(t, e.do(req{Method: "DELETE", Path: "/api/v1/session", Header: map[string]string{"Cookie": SessionCookie + "=forged.x"}}), 204)
	wantStatus(t, e.do(req{Method: "DELETE", Path: "/api/v1/session", Header: map[string]string{"Cookie": SessionCookie + "=" + cookie}}), 204)
	var actions []string
	for _, g := range e.audit("").Entries {
		if g.By != "deployer" || g.Outcome != store.AuditOK {
			t.Errorf("entry = %+v, want deployer's and ok", g)
		}
		actions = append(actions, g.Action)
	}
	if want := []string{store.AuditSignOut, store.AuditSignIn}; !slices.Equal(actions, want) {
		t.Errorf("actions = %v, want %v", actions, want)
	}
}

func TestAuditPagingAndFilters(t *testing.T) {
	e := newAuditEnv(t)
	for i := range 5 {
		path := "/api/v1/jobs/backup/disable"
		if i%2 == 1 {
			path = "/api/v1/jobs/manual/enable"
		}
		wantStatus(t, e.do(req{Method: "POST", Path: path, Auth: opSecret}), 200)
	}
	var seen []int64
	query := "?limit=2"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatalf("paging did not end; ids so far %v", seen)
		}
		p := e.audit(query)
		for _, g := range p.Entries {
			seen = append(seen, g.ID)
		}
		if p.NextBefore == nil {
			break
		}
		query = fmt.Sprintf("?limit=2&before=%d", *p.NextBefore)
	}
	if len(seen) != 5 || !slices.IsSortedFunc(seen, func(a, b int64) int { return int(b - a) }) || slices.Compact(slices.Clone(seen))[4] != seen[4] {
		t.Errorf("ids over the pages = %v, want 5 distinct, newest first", seen)
	}
	for _, f := range []struct {
		query string
		n     int
	}{{"?job=manual", 2}, {"?action=disable", 3}, {"?action=enable&job=backup", 0}, {"?by=deployer", 5}, {"?by=viewer", 0}} {
		if got := e.audit(f.query).Entries; len(got) != f.n {
			t.Errorf("%s: %d entries, want %d", f.query, len(got), f.n)
		}
	}
	for _, bad := range []string{"?before=x", "?before=0", "?action=delete", "?limit=0"} {
		wantError(t, e.do(req{Method: "GET", Path: "/api/v1/audit" + bad, Auth: readSecret}), 400, CodeBadRequest)
	}
}

// Every route that acts is audited, and the table names no route that is
// not served: a new action must choose its audit action.
func TestAuditedRoutesCoverEveryAction(t *testing.T) {
	e := newEnv(t)
	served := map[string]bool{}
	for _, p := range e.api.patterns {
		served[p] = true
		method, _, _ := strings.Cut(p, " ")
		if method == "GET" || strings.HasSuffix(p, "/api/v1/session") {
			continue
		}
		if _, ok := auditedRoutes[p]; !ok {
			t.Errorf("route %q acts but has no audit action in auditedRoutes", p)
		}
	}
	for p := range auditedRoutes {
		if !served[p] {
			t.Errorf("auditedRoutes names %q, which is not served", p)
		}
	}
}
