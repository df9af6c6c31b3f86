package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type auditEntry struct {
	ID      int64  `json:"id"`
	By      string `json:"by"`
	Action  string `json:"action"`
	Via     string `json:"via"`
	Job     string `json:"job"`
	RunID   string `json:"run_id"`
	Detail  string `json:"detail"`
	Outcome string `json:"outcome"`
	Error   string `json:"error"`
}

func (c *core) audit() []auditEntry {
	c.t.Helper()
	var resp struct {
		Entries []auditEntry `json:"entries"`
	}
	if st := c.call(http.MethodGet, "/api/v1/audit", nil, &resp); st != http.StatusOK {
		c.t.Fatalf("audit: status %d", st)
	}
	return resp.Entries
}

// TestAuditLog: a real core records what operators did through the API
// and by signal, in its store, so that the log outlives a restart.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("sleepy", "sleep 60", ""))
	id := c.runNow("sleepy")
	c.waitRunning(id)
	if st := c.call(http.MethodPost, "/api/v1/runs/"+id+"/kill", map[string]string{"grace": "1s"}, nil); st != http.StatusAccepted {
		t.Fatalf("kill: %d", st)
	}
	c.waitFinal(id, 30*time.Second)

	// A SIGHUP with a broken configuration: refused, and recorded so.
	if err := os.WriteFile(filepath.Join(c.dir, "config.hcl"), []byte(coreBlock("")+`job "x" {`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var reload auditEntry
	deadline := time.Now().Add(30 * time.Second)
	for reload.Action == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no reload entry after SIGHUP; log %+v", c.audit())
		}
		for _, e := range c.audit() {
			if e.Action == "reload" {
				reload = e
			}
		}
		time.Sleep(50 * time.Millisecond) // polling the API for the signal's effect
	}
	if reload.By != "SIGHUP" || reload.Via != "signal" || reload.Outcome != "refused" || !strings.Contains(reload.Error, "config.hcl:") {
		t.Errorf("reload entry = %+v; want by SIGHUP via signal, refused with the diagnostics", reload)
	}

	// Restore a good configuration so the core restarts on it.
	if err := os.WriteFile(filepath.Join(c.dir, "config.hcl"), []byte(coreBlock("")+job("sleepy", "sleep 60", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	c.restart(syscall.SIGTERM)
	got := c.audit()
	if len(got) != 3 {
		t.Fatalf("after a restart the log has %d entries, want 3: %+v", len(got), got)
	}
	want := []auditEntry{
		{By: "SIGHUP", Action: "reload", Via: "signal", Outcome: "refused"},
		{By: "local", Action: "kill", Via: "api", Job: "sleepy", RunID: id, Detail: "the job's signal, grace 1s", Outcome: "ok"},
		{By: "local", Action: "run", Via: "api", Job: "sleepy", RunID: id, Outcome: "ok"},
	}
	for i, w := range want {
		g := got[i]
		g.ID, g.Error = 0, ""
		if g != w {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
	}
}
