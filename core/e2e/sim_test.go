package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/loadgen"
)

// TestSim drives a real core through the sim target plugin (built here,
// configured by path as an operator configures a third party's plugin)
// and a load generator in this process that plays every machine's
// wrapper over real WebSocket connections from 127.0.0.2-5. It checks
// that what the core stores is what the fake jobs did, and that the load
// generator saw each dispatch once.
func TestSim(t *testing.T) {
	t.Parallel()
	simBin := buildSimPlugin(t)
	lg, sock := startSimLoadgen(t)

	var jobs strings.Builder
	for i := range simJobs {
		fmt.Fprintf(&jobs, `
job %q {
  schedule = "@manually"
  command  = "sim exit=0"
  target "sim" {
    machines = %d
  }
}
`, simJobName(i), simMachines)
	}
	c := startCore(t, coreBlock("")+fmt.Sprintf(`
plugin "target" "sim" {
  path = %q
  config {
    loadgen = %q
  }
}
%s
job "forever" {
  schedule = "@manually"
  command  = "sim duration=forever term=honour"
  target "sim" {
    machines = 200
  }
}

job "stubborn" {
  schedule = "@manually"
  command  = "sim duration=forever term=ignore"
  kill {
    grace = "300ms"
  }
  target "sim" {
    names = ["stubborn-1", "stubborn-2"]
  }
}

job "fails" {
  schedule = "@manually"
  command  = "sim exit=3"
  target "sim" {
    machines = 3
  }
}

job "chatty" {
  schedule = "@manually"
  command  = "sim output=100000 chunk=4096"
  target "sim" {
    machines = 2
  }
}
`, simBin, "unix:"+sock, jobs.String()))
	// Each subtest reads the API through a view of the core that fails
	// the subtest, not the parent: a subtest must not end its parent.
	view := func(t *testing.T) *core { v := *c; v.t = t; return &v }

	t.Run("every machine of 20 jobs of 50 succeeds", func(t *testing.T) {
		c := view(t)
		ids := make([]string, simJobs)
		for i := range ids {
			ids[i] = c.runNow(simJobName(i))
		}
		for i, id := range ids {
			r := c.waitFinal(id, 90*time.Second)
			if r.Status != "succeeded" || len(r.Machines) != simMachines {
				t.Errorf("run %s of %s: %s on %d machines, want succeeded on %d", id, simJobName(i), r.Status, len(r.Machines), simMachines)
				continue
			}
			for _, m := range r.Machines {
				if m.Status != "succeeded" || m.ExitCode == nil || *m.ExitCode != 0 || m.PID <= 0 || m.StartedAt.IsZero() {
					t.Errorf("run %s machine %s: %s exit %v pid %d started %s", id, m.Machine, m.Status, deref(m.ExitCode), m.PID, m.StartedAt)
				}
			}
		}
		recs := simRecords(lg, ids)
		if n := len(recs); n != simJobs*simMachines {
			t.Errorf("the load generator recorded %d (run, machine) pairs, want %d", n, simJobs*simMachines)
		}
		for _, r := range recs {
			if r.Dispatches != 1 || r.Connects != 1 || r.CompleteAckedAt.IsZero() || r.ExitCode == nil || *r.ExitCode != 0 {
				t.Errorf("load generator record %+v: want one dispatch, one connect, complete 0 acked", r)
			}
		}
	})

	t.Run("killing 200 machines honouring SIGTERM", func(t *testing.T) {
		c := view(t)
		id := c.runNow("forever")
		c.waitRun(id, 60*time.Second, "200 machines started", func(r run) bool {
			if len(r.Machines) != 200 {
				return false
			}
			for _, m := range r.Machines {
				if m.Status != "running" || m.PID <= 0 {
					return false
				}
			}
			return true
		})
		if st := c.call(http.MethodPost, "/api/v1/runs/"+id+"/kill", nil, nil); st != http.StatusAccepted {
			t.Fatalf("kill run %s: status %d", id, st)
		}
		r := c.waitFinal(id, 60*time.Second)
		if r.Status != "killed" {
			t.Errorf("run %s after the kill, want killed", r.Status)
		}
		for _, m := range r.Machines {
			if m.Status != "killed" || deref(m.ExitCode) != 143 {
				t.Errorf("machine %s: %s/%v after the kill, want killed/143", m.Machine, m.Status, deref(m.ExitCode))
			}
		}
		recs := simRecords(lg, []string{id})
		if len(recs) != 200 {
			t.Fatalf("the load generator recorded %d machines of the run, want 200", len(recs))
		}
		for _, rec := range recs {
			if rec.KillAt.IsZero() || rec.CompleteSentAt.Before(rec.KillAt) || rec.ExitCode == nil || *rec.ExitCode != 143 {
				t.Errorf("load generator record %+v: want a kill frame, then complete 143", rec)
			}
		}
	})

	t.Run("a job ignoring SIGTERM is killed after its grace", func(t *testing.T) {
		c := view(t)
		id := c.runNow("stubborn")
		c.waitRun(id, 30*time.Second, "both machines started", func(r run) bool {
			return len(r.Machines) == 2 && r.Machines[0].PID > 0 && r.Machines[1].PID > 0
		})
		if st := c.call(http.MethodPost, "/api/v1/jobs/stubborn/kill", nil, nil); st != http.StatusAccepted {
			t.Fatalf("kill job stubborn: status %d", st)
		}
		r := c.waitFinal(id, 30*time.Second)
		for _, m := range r.Machines {
			if m.Status != "killed" || deref(m.ExitCode) != 143 {
				t.Errorf("machine %s: %s/%v, want killed/143", m.Machine, m.Status, deref(m.ExitCode))
			}
			if sys := c.output(id, m.Machine, "system"); !strings.Contains(sys, "killed with SIGKILL") {
				t.Errorf("system stream of %s: %q, want the SIGKILL note", m.Machine, sys)
			}
		}
		for _, rec := range simRecords(lg, []string{id}) {
			if d := rec.CompleteSentAt.Sub(rec.KillAt); d < 300*time.Millisecond {
				t.Errorf("%s completed %s after the kill frame, within the 300ms grace", rec.Machine, d)
			}
		}
	})

	t.Run("exit 3 fails the run", func(t *testing.T) {
		c := view(t)
		r := c.waitFinal(c.runNow("fails"), 30*time.Second)
		if r.Status != "failed" || len(r.Machines) != 3 {
			t.Fatalf("run %s on %d machines, want failed on 3", r.Status, len(r.Machines))
		}
		for _, m := range r.Machines {
			if m.Status != "failed" || deref(m.ExitCode) != 3 {
				t.Errorf("machine %s: %s/%v, want failed/3", m.Machine, m.Status, deref(m.ExitCode))
			}
		}
	})

	t.Run("100000 bytes of output are stored byte-exact", func(t *testing.T) {
		c := view(t)
		id := c.runNow("chatty")
		r := c.waitFinal(id, 30*time.Second)
		if r.Status != "succeeded" {
			t.Fatalf("run %s, want succeeded", r.Status)
		}
		want := string(loadgen.OutputPattern(100000))
		for _, m := range r.Machines {
			got := c.output(id, m.Machine, "stdout")
			if got != want {
				t.Errorf("stdout of %s: %d bytes, want %d; first difference at byte %d", m.Machine, len(got), len(want), firstDiff(got, want))
			}
			if m.OutputBytes != 100000 {
				t.Errorf("machine %s: output_bytes %d, want 100000", m.Machine, m.OutputBytes)
			}
		}
	})
}

const (
	simJobs     = 20
	simMachines = 50
)

func simJobName(i int) string { return fmt.Sprintf("many-%02d", i) }

// buildSimPlugin builds the example sim plugin into the test's folder.
func buildSimPlugin(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sim")
	cmd := exec.Command("go", "build", "-o", out, "github.com/saltpeter/saltpeter/examples/plugins/sim")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build the sim plugin: %v", err)
	}
	return out
}

// startSimLoadgen serves a load generator on a unix socket until the test
// ends (after the core's cleanup, which was registered later).
func startSimLoadgen(t *testing.T) (*loadgen.Server, string) {
	t.Helper()
	sources, err := loadgen.ParseSources("127.0.0.2-127.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	lg := loadgen.New(loadgen.Config{Sources: sources,
		Log: hclog.New(&hclog.LoggerOptions{Name: "loadgen", Output: logs, Level: hclog.Debug})})
	sock := filepath.Join(t.TempDir(), "lg.sock")
	l, err := loadgen.Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lg.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("load generator: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("the load generator did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("load generator log:\n%s", logs.String())
		}
	})
	return lg, sock
}

// simRecords returns the load generator's records of the given runs.
func simRecords(lg *loadgen.Server, runs []string) []loadgen.Record {
	want := map[string]bool{}
	for _, r := range runs {
		want[r] = true
	}
	var out []loadgen.Record
	for _, r := range lg.Stats(true).Records {
		if want[r.RunID] {
			out = append(out, r)
		}
	}
	return out
}
