package e2e

import (
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestHistorySurvivesRestarts: with the default store (SQLite in the data
// directory, served by its plugin), a finished run, its output and a
// disabled job are still there after a graceful restart and after the
// core is SIGKILLed.
func TestHistorySurvivesRestarts(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("hello", `printf 'out\n'; printf 'err\n' >&2; exit 3`, "")+job("later", "true", ""))
	host := hostname(t)
	id := c.runNow("hello")
	before := c.waitFinal(id, 30*time.Second)
	if before.Status != "failed" || deref(before.Machines[0].ExitCode) != 3 {
		t.Fatalf("first run %+v", before)
	}
	if st := c.call(http.MethodPost, "/api/v1/jobs/later/disable", nil, nil); st != http.StatusOK {
		t.Fatalf("disable: %d", st)
	}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		c.restart(sig)
		after := c.run(id)
		if after.Status != before.Status || !after.FinishedAt.Equal(before.FinishedAt) ||
			deref(after.Machines[0].ExitCode) != 3 || after.Machines[0].Machine != host {
			t.Fatalf("after %s the run reads %+v, before it read %+v", sig, after, before)
		}
		if out := c.output(id, host, ""); out != "out\nerr\n" && out != "err\nout\n" {
			t.Fatalf("after %s the output reads %q", sig, out)
		}
		if got := listRuns(t, c, "hello"); len(got) != 1 || got[0].ID != id {
			t.Fatalf("after %s the history lists %+v", sig, got)
		}
		var job struct {
			Enabled         bool   `json:"enabled"`
			EnabledInConfig bool   `json:"enabled_in_config"`
			OverrideBy      string `json:"override_by"`
		}
		if st := c.call(http.MethodGet, "/api/v1/jobs/later", nil, &job); st != http.StatusOK || job.Enabled || !job.EnabledInConfig || job.OverrideBy != "local" {
			t.Fatalf("after %s the disabled job reads %d %+v", sig, st, job)
		}
	}
	// The store still takes writes after the crash.
	if r := c.waitFinal(c.runNow("hello"), 30*time.Second); r.Status != "failed" {
		t.Fatalf("a run after the restarts: %+v", r)
	}
}
