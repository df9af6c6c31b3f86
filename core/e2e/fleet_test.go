package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestThirdPartyPluginRunsAFleet configures the example simfleet plugin
// by path, as an operator configures a third party's plugin, and runs and
// kills a job on three machines through it.
func TestThirdPartyPluginRunsAFleet(t *testing.T) {
	t.Parallel()
	machines := []string{"sim1", "sim2", "sim3"}
	c := startCore(t, coreBlock("")+fmt.Sprintf(`
plugin "target" "simfleet" {
  path = %q
  config {
    wrapper = %q
  }
}

job "fleet" {
  schedule = "@manually"
  command  = "echo \"on $SP_MACHINE_ID\""
  target "simfleet" {
    machines = ["sim1", "sim2", "sim3"]
  }
}

job "fleet-long" {
  schedule = "@manually"
  command  = "echo ready; while :; do sleep 0.2; done"
  target "simfleet" {
    machines = ["sim1", "sim2", "sim3"]
  }
}
`, filepath.Join(binDir, "simfleet"), filepath.Join(binDir, "saltpeter-wrapper")))

	id := c.runNow("fleet")
	r := c.waitFinal(id, 30*time.Second)
	if r.Status != "succeeded" || len(r.Machines) != len(machines) {
		t.Fatalf("fleet run %s with %d machines, want succeeded on 3: %+v", r.Status, len(r.Machines), r)
	}
	for i, m := range r.Machines {
		if m.Machine != machines[i] || m.Status != "succeeded" {
			t.Errorf("machine %d: %+v, want %s succeeded", i, m, machines[i])
		}
		if out := c.output(id, m.Machine, "stdout"); out != "on "+m.Machine+"\n" {
			t.Errorf("output of %s: %q", m.Machine, out)
		}
	}

	id = c.runNow("fleet-long")
	c.waitRun(id, 30*time.Second, "every machine running", func(r run) bool {
		if len(r.Machines) != len(machines) {
			return false
		}
		for _, m := range r.Machines {
			if m.Status != "running" || !strings.Contains(c.output(id, m.Machine, "stdout"), "ready") {
				return false
			}
		}
		return true
	})
	// Killing one machine leaves the others running.
	if st := c.call(http.MethodPost, "/api/v1/runs/"+id+"/machines/sim2/kill", nil, nil); st != http.StatusAccepted {
		t.Fatalf("kill sim2: %d", st)
	}
	c.waitRun(id, 30*time.Second, "sim2 killed", func(r run) bool {
		return len(r.Machines) == 3 && r.Machines[1].Status == "killed"
	})
	if r := c.run(id); r.Status != "running" || r.Machines[0].Status != "running" || r.Machines[2].Status != "running" {
		t.Fatalf("after killing sim2 alone: %+v", r)
	}
	if st := c.call(http.MethodPost, "/api/v1/jobs/fleet-long/kill", nil, nil); st != http.StatusAccepted {
		t.Fatalf("kill: %d", st)
	}
	r = c.waitFinal(id, 30*time.Second)
	if r.Status != "killed" {
		t.Fatalf("fleet kill left the run %s: %+v", r.Status, r)
	}
	for _, m := range r.Machines {
		if m.Status != "killed" || deref(m.ExitCode) != 143 {
			t.Errorf("machine %s: %s/%v after the job kill, want killed/143", m.Machine, m.Status, deref(m.ExitCode))
		}
	}
}

// TestFleetBatchesAndPicks: number_of_targets picks 4 of 5 machines, and
// batch_size = 2 starts the second pair only once the first pair ended.
func TestFleetBatchesAndPicks(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+fmt.Sprintf(`
plugin "target" "simfleet" {
  path = %q
  config {
    wrapper = %q
  }
}

job "batched" {
  schedule          = "@manually"
  command           = "sleep 0.5"
  number_of_targets = 4
  batch_size        = 2
  target "simfleet" {
    machines = ["sim1", "sim2", "sim3", "sim4", "sim5"]
  }
}
`, filepath.Join(binDir, "simfleet"), filepath.Join(binDir, "saltpeter-wrapper")))
	r := c.waitFinal(c.runNow("batched"), 60*time.Second)
	if r.Status != "succeeded" || len(r.Machines) != 4 {
		t.Fatalf("run %s on %d machines, want succeeded on 4 of the 5: %+v", r.Status, len(r.Machines), r)
	}
	first, second := r.Machines[:2], r.Machines[2:]
	for _, late := range second {
		for _, early := range first {
			if late.StartedAt.Before(early.FinishedAt) {
				t.Errorf("%s started at %s, before %s of the first batch ended at %s",
					late.Machine, late.StartedAt, early.Machine, early.FinishedAt)
			}
		}
	}
}

// TestFleetBatchesCarryOnAfterARestart: a job on three machines, one at
// a time; the core is stopped, gracefully (SIGTERM) or not (SIGKILL),
// while the first runs, the other two queued. The restarted core takes
// the first over, does not mistake the queued ones for machines that
// never connected, and launches them one after the other once the first
// ended: every machine runs once and the run succeeds.
func TestFleetBatchesCarryOnAfterARestart(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			fleetBatchesCarryOn(t, sig)
		})
	}
}

func fleetBatchesCarryOn(t *testing.T, sig syscall.Signal) {
	t.Helper()
	dir := t.TempDir()
	ran, gate := filepath.Join(dir, "ran"), filepath.Join(dir, "gate")
	// Each machine notes that it ran, then waits for the gate: the first
	// is still running when the core stops.
	command := fmt.Sprintf(`echo "$SP_MACHINE_ID" >> %s; echo ready; while [ ! -e %s ]; do sleep 0.05; done`, ran, gate)
	c := startCore(t, restartableCore(t)+fmt.Sprintf(`
plugin "target" "simfleet" {
  path = %q
  config {
    wrapper = %q
  }
}

job "rolling" {
  schedule   = "@manually"
  command    = %q
  batch_size = 1
  target "simfleet" {
    machines = ["sim1", "sim2", "sim3"]
  }
}
`, filepath.Join(binDir, "simfleet"), filepath.Join(binDir, "saltpeter-wrapper"), command))
	queued := func(m machine) bool {
		return m.Status == "pending" && strings.HasPrefix(m.Reason, "queued: ")
	}
	id := c.runNow("rolling")
	c.waitRun(id, 30*time.Second, "sim1 running, sim2 and sim3 queued", func(r run) bool {
		return len(r.Machines) == 3 && r.Machines[0].Status == "running" &&
			strings.Contains(c.output(id, "sim1", "stdout"), "ready") && queued(r.Machines[1]) && queued(r.Machines[2])
	})

	c.restart(sig)
	// The new core serves once it took the run over.
	if r := c.run(id); r.Machines[0].Status != "running" || !queued(r.Machines[1]) || !queued(r.Machines[2]) {
		t.Fatalf("after the restart: %+v; want sim1 running, sim2 and sim3 still queued", r)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := c.waitFinal(id, 60*time.Second)
	if r.Status != "succeeded" || len(r.Machines) != 3 {
		t.Fatalf("run after the restart: %+v", r)
	}
	for i, m := range r.Machines {
		if m.Status != "succeeded" || strings.HasPrefix(m.Reason, "queued: ") {
			t.Errorf("machine %s: %s (%q), want succeeded", m.Machine, m.Status, m.Reason)
		}
		if i > 0 && m.StartedAt.Before(r.Machines[i-1].FinishedAt) {
			t.Errorf("%s started at %s, before %s ended at %s", m.Machine, m.StartedAt, r.Machines[i-1].Machine, r.Machines[i-1].FinishedAt)
		}
	}
	b, err := os.ReadFile(ran)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(b)); !slices.Equal(got, []string{"sim1", "sim2", "sim3"}) {
		t.Fatalf("machines ran %v, want sim1, sim2 and sim3 once each", got)
	}
	if !strings.Contains(c.logs.String(), "carrying on with the run's later batches") {
		t.Fatal("the restarted core did not launch the queued batches itself")
	}
}

// TestRetryRerunsOnlyTheFailedMachine: a job on three machines fails on
// one; after its back-off the retry block runs that machine alone again,
// as a run with trigger retry, which succeeds.
func TestRetryRerunsOnlyTheFailedMachine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	marker, ran := filepath.Join(dir, "failed-once"), filepath.Join(dir, "ran")
	command := fmt.Sprintf(`echo "$SP_MACHINE_ID" >> %s; if [ "$SP_MACHINE_ID" = sim2 ] && [ ! -e %s ]; then touch %s; exit 4; fi`, ran, marker, marker)
	c := startCore(t, coreBlock("")+fmt.Sprintf(`
plugin "target" "simfleet" {
  path = %q
  config {
    wrapper = %q
  }
}

job "flaky" {
  schedule = "@manually"
  command  = %q
  target "simfleet" {
    machines = ["sim1", "sim2", "sim3"]
  }
  retry {
    attempts = 2
    backoff  = "500ms"
  }
}
`, filepath.Join(binDir, "simfleet"), filepath.Join(binDir, "saltpeter-wrapper"), command))
	id := c.runNow("flaky")
	if r := c.waitFinal(id, 30*time.Second); r.Status != "failed" {
		t.Fatalf("first run %s, want failed", r.Status)
	}
	var retry run
	deadline := time.Now().Add(30 * time.Second)
	for retry.ID == "" {
		var resp struct {
			Runs []run `json:"runs"`
		}
		if st := c.call(http.MethodGet, "/api/v1/runs?job=flaky", nil, &resp); st != http.StatusOK {
			t.Fatalf("list runs: %d", st)
		}
		for _, r := range resp.Runs {
			if r.Trigger == "retry" {
				retry = r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no retry run: %+v", resp.Runs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := c.waitFinal(retry.ID, 30*time.Second)
	if r.Status != "succeeded" || len(r.Machines) != 1 || r.Machines[0].Machine != "sim2" {
		t.Fatalf("retry run: %+v, want succeeded on sim2 alone", r)
	}
	b, err := os.ReadFile(ran)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(b))
	slices.Sort(got)
	if !slices.Equal(got, []string{"sim1", "sim2", "sim2", "sim3"}) {
		t.Fatalf("machines ran %v, want sim2 twice and the others once", got)
	}
}
