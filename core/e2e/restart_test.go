package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
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
	historySurvivesRestarts(t, "")
}

// historySurvivesRestarts is TestHistorySurvivesRestarts with the core on
// the store storeBlock declares ("" for the default).
func historySurvivesRestarts(t *testing.T, storeBlock string) {
	t.Helper()
	c := startCore(t, coreBlock("")+storeBlock+job("hello", `printf 'out\n'; printf 'err\n' >&2; exit 3`, "")+job("later", "true", ""))
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

// freePort returns a loopback port nothing listens on now, so that a core
// restarted on it is where its wrappers left it.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRunSurvivesACoreRestart: a job prints 150 numbered lines over six
// seconds; the core is stopped in the middle, gracefully (SIGTERM) or not
// (SIGKILL), and started again. The job keeps running meanwhile, its
// wrapper resumes with the new core, which takes the run over from the
// store: the run ends succeeded and its output is the 150 lines, once
// each.
func TestRunSurvivesACoreRestart(t *testing.T) {
	t.Parallel()
	runSurvivesACoreRestart(t, func(*testing.T) string { return "" })
}

// runSurvivesACoreRestart is TestRunSurvivesACoreRestart with the core on
// the store storeBlock declares for each subtest ("" for the default); a
// function, since each subtest's core needs a store of its own.
func runSurvivesACoreRestart(t *testing.T, storeBlock func(t *testing.T) string) {
	t.Helper()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			c := startCore(t, restartableCore(t)+storeBlock(t)+job("count", `echo "pids $$"; i=1; while [ $i -le 150 ]; do echo "line $i"; i=$((i+1)); sleep 0.04; done`, ""))
			host := hostname(t)
			id := c.runNow("count")
			pids := treePIDs(t, c.followUntil(id, host, "line 40\n"))
			t.Cleanup(func() { killPIDs(pids) })
			c.stop(sig)
			if a := alive(pids); len(a) != len(pids) {
				t.Fatalf("stopping the core with %s stopped the job", sig)
			}
			c.launch()

			r := c.waitFinal(id, 60*time.Second)
			if r.Status != "succeeded" || deref(r.Machines[0].ExitCode) != 0 {
				t.Fatalf("run after the restart: %+v", r)
			}
			var want strings.Builder
			fmt.Fprintf(&want, "pids %d\n", pids[0])
			for i := 1; i <= 150; i++ {
				fmt.Fprintf(&want, "line %d\n", i)
			}
			if got := c.output(id, host, "stdout"); got != want.String() {
				t.Fatalf("output after the restart differs from the job's at byte %d: %d bytes, want %d",
					firstDiff(got, want.String()), len(got), want.Len())
			}
		})
	}
}

// TestKillAnsweredBeforeACrashStillLands: the wrapper is cut off, an
// operator's kill is answered 202 and the core is SIGKILLed before it
// could deliver it. The restarted core finds the kill in the store and
// delivers it when the wrapper comes back: the job ends killed.
func TestKillAnsweredBeforeACrashStillLands(t *testing.T) {
	t.Parallel()
	p := newCutProxy(t)
	port := freePort(t)
	block := fmt.Sprintf(`core {
  listen             = "127.0.0.1:%d"
  advertise          = [%q]
  heartbeat_interval = "500ms"
  heartbeat_timeout  = "15s"
  connect_deadline   = "20s"
}
`, port, "ws://"+p.ln.Addr().String())
	c := startCore(t, block+job("victim", `echo "pids $$"; echo ready; while :; do sleep 0.1; done`, ""))
	p.setBackend(c.addr)
	_, host, pids := c.startReady(t, "victim")
	runs := listRuns(t, c, "victim")
	id := runs[0].ID

	p.hold()
	if st := c.call(http.MethodPost, "/api/v1/runs/"+id+"/kill", nil, nil); st != http.StatusAccepted {
		t.Fatalf("kill: %d", st)
	}
	c.restart(syscall.SIGKILL)
	if a := alive(pids); len(a) != len(pids) {
		t.Fatalf("the job died before any kill could reach it: alive %v of %v", a, pids)
	}
	p.release()

	r := c.waitFinal(id, 60*time.Second)
	if r.Status != "killed" || deref(r.Machines[0].ExitCode) != 143 || r.KilledBy != "local" {
		t.Fatalf("run after the crash: %+v", r)
	}
	if sys := c.output(id, host, "system"); !strings.Contains(sys, "[Job terminated by user request]") {
		t.Errorf("system stream: %q", sys)
	}
	if a := alive(pids); len(a) > 0 {
		t.Fatalf("survivors: %v", a)
	}
	if !strings.Contains(c.logs.String(), "kill queued again after a restart") {
		t.Fatal("the restarted core did not queue the stored kill: the kill reached the job another way")
	}
}

// TestCatchUpLatestAfterDowntime: a job firing every two seconds; the
// core is down for three or more of its slots. On restart the job's
// default catch_up = "latest" fires the latest missed slot once, with
// trigger catch_up, and the schedule goes on; no slot fires twice.
func TestCatchUpLatestAfterDowntime(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+`
job "tick" {
  schedule = "*/2 * * * * *"
  command  = "true"
  overlap  = "allow"
  target "local" {}
}
`)
	waitRuns(t, c, "tick", 1, 20*time.Second)
	c.stop(syscall.SIGTERM)
	down := time.Now()
	// The downtime is the scenario itself: three slots must pass.
	time.Sleep(7 * time.Second)
	c.launch()
	up := time.Now()

	var runs []run
	deadline := time.Now().Add(20 * time.Second)
	for {
		runs = listRuns(t, c, "tick")
		caught := 0
		for _, r := range runs {
			if r.Trigger == "catch_up" {
				caught++
			}
		}
		if caught > 0 && runs[0].Trigger == "schedule" && runs[0].ScheduledFor.After(up) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no catch-up and scheduled run after the restart: %+v", runs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[time.Time]string{}
	var caught []run
	for _, r := range runs {
		if prev, dup := seen[r.ScheduledFor]; dup {
			t.Fatalf("slot %s fired twice: runs %s and %s", r.ScheduledFor, prev, r.ID)
		}
		seen[r.ScheduledFor] = r.ID
		if r.Trigger == "catch_up" {
			caught = append(caught, r)
		}
	}
	if len(caught) != 1 {
		t.Fatalf("%d catch-up runs, want 1 (latest): %+v", len(caught), caught)
	}
	slot := caught[0].ScheduledFor
	if !slot.After(down) || slot.After(up) || slot.Second()%2 != 0 {
		t.Fatalf("caught-up slot %s is not the latest slot missed between %s and %s", slot, down, up)
	}
	if up.Sub(slot) >= 2*time.Second+500*time.Millisecond {
		t.Fatalf("caught-up slot %s is not the latest before the restart at %s", slot, up)
	}
}

// storePluginPID finds the core's SQLite store plugin process.
func storePluginPID(t *testing.T, c *core) int {
	t.Helper()
	for _, pid := range childrenOf(t, c.cmd.Process.Pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.Contains(string(b), "plugin\x00store\x00sqlite") {
			return pid
		}
	}
	t.Fatal("the core has no sqlite store plugin process")
	return 0
}

// TestStorePluginDeathLosesNothing: the store plugin is SIGKILLed while a
// job writes; the core restarts it and retries what was in flight, and
// the wrapper, at worst, sees slower acks: the run succeeds with its
// output byte-exact.
func TestStorePluginDeathLosesNothing(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("count", `i=1; while [ $i -le 100 ]; do echo "line $i"; i=$((i+1)); sleep 0.02; done`, ""))
	host := hostname(t)
	id := c.runNow("count")
	c.followUntil(id, host, "line 20\n")
	first := storePluginPID(t, c)
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := c.waitFinal(id, 60*time.Second)
	if r.Status != "succeeded" {
		t.Fatalf("run after the store plugin died: %+v", r)
	}
	var want strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if got := c.output(id, host, "stdout"); got != want.String() {
		t.Fatalf("output differs at byte %d: %d bytes, want %d", firstDiff(got, want.String()), len(got), want.Len())
	}
	if again := storePluginPID(t, c); again == first {
		t.Fatalf("the store plugin %d was not restarted", first)
	}
}

// TestRetentionPrunesOldRuns: a core (re)starting prunes the runs that
// finished longer ago than the store block's retention, and keeps the
// ones in flight.
func TestRetentionPrunesOldRuns(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+`
store "sqlite" {
  retention = "1s"
}
`+job("quick", "true", "")+job("slow", `echo "pids $$"; echo ready; sleep 1000`, `overlap = "allow"`))
	old := c.waitFinal(c.runNow("quick"), 30*time.Second)
	_, _, pids := c.startReady(t, "slow")
	c.stop(syscall.SIGTERM)
	// Let the finished run age past the retention: the scenario, not
	// synchronisation.
	time.Sleep(time.Until(old.FinishedAt.Add(1500 * time.Millisecond)))
	c.launch()
	deadline := time.Now().Add(20 * time.Second)
	for len(listRuns(t, c, "quick")) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the run finished at %s was not pruned with a 1s retention", old.FinishedAt)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if runs := listRuns(t, c, "slow"); len(runs) != 1 {
		t.Fatalf("the run in flight was pruned or duplicated: %+v", runs)
	}
	killPIDs(pids)
}

// TestNoSlotFiresTwiceAcrossQuickRestarts: a job firing every second;
// the core is SIGKILLed just after a slot fired and started again at
// once, within about that second, three times over. Whatever the new
// core's scheduler and catch-up offer, no slot has two runs.
func TestNoSlotFiresTwiceAcrossQuickRestarts(t *testing.T) {
	t.Parallel()
	c := startCore(t, restartableCore(t)+`
job "tick" {
  schedule = "* * * * * *"
  command  = "true"
  overlap  = "allow"
  catch_up = "all"
  target "local" {}
}
`)
	want := 1
	for range 3 {
		waitRuns(t, c, "tick", want, 20*time.Second)
		c.restart(syscall.SIGKILL)
		want = len(listRuns(t, c, "tick")) + 2
	}
	runs := waitRuns(t, c, "tick", want, 20*time.Second)
	seen := map[time.Time]string{}
	for _, r := range runs {
		if prev, dup := seen[r.ScheduledFor]; dup {
			t.Fatalf("slot %s fired twice: runs %s and %s", r.ScheduledFor, prev, r.ID)
		}
		seen[r.ScheduledFor] = r.ID
	}
}

// restartableCore is a core block on a port of its own, kept across
// restarts, so that wrappers cut off by a restart come back to the next
// core; its heartbeat timeout outlasts a restart.
func restartableCore(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf(`core {
  listen             = "127.0.0.1:%d"
  heartbeat_interval = "500ms"
  heartbeat_timeout  = "15s"
  connect_deadline   = "20s"
}
`, freePort(t))
}
