package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOverlapQueueAndReplace, with the real wrapper: under "queue" a run
// asked for while the job runs waits, shown as queued, and starts once
// the running one ended; under "replace" the running one is killed with
// the job's kill policy first, and says who killed it. A third ask while
// one waits is refused with 409 OVERLAP.
func TestOverlapQueueAndReplace(t *testing.T) {
	t.Parallel()
	gate := filepath.Join(t.TempDir(), "gate")
	release := filepath.Join(t.TempDir(), "release")
	// The queue job runs until the gate opens. The replace job runs until
	// it is killed, and then holds out in its SIGTERM trap until released,
	// within the kill's grace: a local kill takes milliseconds, so the run
	// replacing it would otherwise be running, no longer waiting, by the
	// time the test asks for a third.
	c := startCore(t, coreBlock("")+
		job("queued", fmt.Sprintf(`echo "ready $SP_JOB_INSTANCE"; while [ ! -e %s ]; do sleep 0.05; done`, gate), `overlap = "queue"`)+
		job("replaced", fmt.Sprintf(`trap 'while [ ! -e %s ]; do sleep 0.05; done; exit 143' TERM; echo ready; while :; do sleep 0.05; done`, release),
			"overlap = \"replace\"\n  kill {\n    signal = \"SIGTERM\"\n    grace  = \"20s\"\n  }"))

	refused := func(t *testing.T, job string) {
		t.Helper()
		var e struct {
			Code string `json:"code"`
		}
		if st := c.call(http.MethodPost, "/api/v1/jobs/"+job+"/run", nil, &e); st != http.StatusConflict || e.Code != "OVERLAP" {
			t.Fatalf("a third run of %s: status %d code %q, want 409 OVERLAP", job, st, e.Code)
		}
	}

	t.Run("queue", func(t *testing.T) {
		first := c.runNow("queued")
		c.waitRunning(first)
		second := c.runNow("queued")
		if r := c.run(second); r.Status != "running" || len(r.Machines) != 0 || !strings.HasPrefix(r.Reason, "queued: ") {
			t.Fatalf("second run while the first runs: %+v, want running, no machine yet, reason queued", r)
		}
		refused(t, "queued")
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		r1 := c.waitFinal(first, 30*time.Second)
		r2 := c.waitFinal(second, 30*time.Second)
		if r1.Status != "succeeded" || r2.Status != "succeeded" || r2.Reason != "" {
			t.Fatalf("runs %s and %s (%q), want both succeeded", r1.Status, r2.Status, r2.Reason)
		}
		if !r2.Machines[0].StartedAt.After(r1.Machines[0].FinishedAt) {
			t.Errorf("the queued run started at %s, before the first ended at %s", r2.Machines[0].StartedAt, r1.Machines[0].FinishedAt)
		}
	})

	t.Run("replace", func(t *testing.T) {
		first := c.runNow("replaced")
		c.followUntil(first, hostname(t), "ready") // its trap is set
		second := c.runNow("replaced")
		refused(t, "replaced")
		if err := os.WriteFile(release, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		r1 := c.waitFinal(first, 30*time.Second)
		if r1.Status != "killed" || !strings.Contains(r1.KilledBy, second) {
			t.Fatalf("replaced run: %s killed by %q, want killed by the run replacing it (%s)", r1.Status, r1.KilledBy, second)
		}
		r2 := c.waitRunning(second)
		if !r2.Machines[0].StartedAt.After(r1.Machines[0].FinishedAt) {
			t.Errorf("the replacing run started at %s, before the replaced one ended at %s", r2.Machines[0].StartedAt, r1.Machines[0].FinishedAt)
		}
		if st := c.call(http.MethodPost, "/api/v1/runs/"+second+"/kill", nil, nil); st != http.StatusAccepted {
			t.Fatalf("kill: %d", st)
		}
		c.waitFinal(second, 30*time.Second)
	})
}
