package e2e

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func hostname(t testing.TB) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatalf("hostname: %v", err)
	}
	return h
}

func job(name, command, extra string) string {
	return fmt.Sprintf(`
job %q {
  schedule = "@manually"
  command  = %q
  target "local" {}
%s
}
`, name, command, extra)
}

// TestRunOutcomes runs jobs to their end and checks the status, the exit
// code and the bytes stored.
func TestRunOutcomes(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+
		job("ok", `printf 'out line\n'; printf 'err line\n' >&2`, "")+
		job("seven", `echo going; exit 7`, "")+
		job("usr1", `kill -USR1 $$`, "")+
		job("self143", `exit 143`, "")+
		job("binary", `printf 'a\377\376b'`, ""))
	host := hostname(t)
	tests := []struct {
		job, status, reason string
		code                int
		stdout, stderr      string
	}{
		{"ok", "succeeded", "exit", 0, "out line\n", "err line\n"},
		{"seven", "failed", "exit", 7, "going\n", ""},
		{"usr1", "failed", "signal", 138, "", ""},
		{"self143", "failed", "exit", 143, "", ""},
		{"binary", "succeeded", "exit", 0, "a\xff\xfeb", ""},
	}
	for _, tc := range tests {
		t.Run(tc.job, func(t *testing.T) {
			id := c.runNow(tc.job)
			r := c.waitFinal(id, 30*time.Second)
			if r.Status != tc.status || len(r.Machines) != 1 {
				t.Fatalf("run status %q with %d machines, want %q with 1: %+v", r.Status, len(r.Machines), tc.status, r)
			}
			m := r.Machines[0]
			if m.Machine != host || m.Status != tc.status || m.ExitCode == nil || *m.ExitCode != tc.code || m.Reason != tc.reason {
				t.Fatalf("machine %+v (exit %v), want %s %s/%d reason %s", m, deref(m.ExitCode), host, tc.status, tc.code, tc.reason)
			}
			if got := c.output(id, host, "stdout"); got != tc.stdout {
				t.Errorf("stdout %q, want %q", got, tc.stdout)
			}
			if got := c.output(id, host, "stderr"); got != tc.stderr {
				t.Errorf("stderr %q, want %q", got, tc.stderr)
			}
		})
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

var pidLine = regexp.MustCompile(`pids? (\d+(?: \d+)*)`)

// treePIDs reads "pids N N N" lines the job printed.
func treePIDs(t *testing.T, out string) []int {
	t.Helper()
	var pids []int
	for _, m := range pidLine.FindAllStringSubmatch(out, -1) {
		for _, f := range strings.Fields(m[1]) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("bad pid %q", f)
			}
			pids = append(pids, n)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("job printed no pids: %q", out)
	}
	return pids
}

// alive reports the pids of the list that still exist and are not zombies.
func alive(pids []int) []int {
	var out []int
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) && s[i+2] == 'Z' {
			continue
		}
		out = append(out, p)
	}
	return out
}

func killPIDs(pids []int) {
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// The tree: a setsid child, a background child, a double-forked
// grandchild and the main shell; each pid is printed before "ready".
const treeJob = `setsid sh -c 'exec sleep 1000' & echo "pids $!"
sleep 1000 & echo "pids $!"
(sh -c 'sleep 1000 & echo "pids $!"')
echo "pids $$"
echo ready
wait`

// startReady runs job and waits until it printed "ready". It returns the
// run id, the machine and the pids the job printed before "ready"; they
// are SIGKILLed when the test ends, whatever happened.
func (c *core) startReady(t *testing.T, job string) (id, host string, pids []int) {
	t.Helper()
	host = hostname(t)
	id = c.runNow(job)
	pids = treePIDs(t, c.followUntil(id, host, "ready"))
	t.Cleanup(func() { killPIDs(pids) })
	return id, host, pids
}

func TestKillEndsTheWholeTree(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("tree", treeJob, `kill {
    signal = "SIGTERM"
    grace  = "5s"
  }`))
	id, host, pids := c.startReady(t, "tree")
	if len(pids) != 4 {
		t.Fatalf("the tree printed %d pids, want 4: %v", len(pids), pids)
	}
	if a := alive(pids); len(a) != len(pids) {
		t.Fatalf("tree not all alive before the kill: %v of %v", a, pids)
	}
	var kr struct {
		Runs []string `json:"runs"`
	}
	if st := c.call(http.MethodPost, "/api/v1/jobs/tree/kill", nil, &kr); st != http.StatusAccepted || len(kr.Runs) != 1 || kr.Runs[0] != id {
		t.Fatalf("kill: status %d runs %v", st, kr.Runs)
	}
	r := c.waitFinal(id, 30*time.Second)
	m := r.Machines[0]
	if r.Status != "killed" || m.Status != "killed" || deref(m.ExitCode) != 143 || m.Reason != "killed" {
		t.Fatalf("after kill: run %s machine %+v exit %v", r.Status, m, deref(m.ExitCode))
	}
	if r.KilledBy != "local" {
		t.Errorf("killed_by %q, want local", r.KilledBy)
	}
	if sys := c.output(id, host, "system"); !strings.Contains(sys, "[Job terminated by user request]") {
		t.Errorf("system stream lacks the termination note: %q", sys)
	}
	if a := alive(pids); len(a) > 0 {
		t.Fatalf("processes of the tree survived the kill: %v", a)
	}
}

func TestKillSIGKILLsAfterGraceNotBefore(t *testing.T) {
	t.Parallel()
	const grace = 2 * time.Second
	c := startCore(t, coreBlock("")+job("stubborn", `trap '' TERM; echo "pids $$"; echo ready; while :; do sleep 0.2; done`, `kill {
    grace = "2s"
  }`))
	id, host, pids := c.startReady(t, "stubborn")
	start := time.Now()
	if st := c.call(http.MethodPost, "/api/v1/runs/"+id+"/kill", nil, nil); st != http.StatusAccepted {
		t.Fatalf("kill: status %d", st)
	}
	r := c.waitFinal(id, 30*time.Second)
	took := time.Since(start)
	if r.Status != "killed" || deref(r.Machines[0].ExitCode) != 143 {
		t.Fatalf("run %s exit %v, want killed/143", r.Status, deref(r.Machines[0].ExitCode))
	}
	if took < grace {
		t.Fatalf("killed after %s, before its %s grace", took, grace)
	}
	if sys := c.output(id, host, "system"); !strings.Contains(sys, "SIGKILL") {
		t.Errorf("system stream does not say SIGKILL was needed: %q", sys)
	}
	if a := alive(pids); len(a) > 0 {
		t.Fatalf("survivors: %v", a)
	}
}

func TestPausedJobIsStillKilledWithinGrace(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("pausable", `echo "pids $$"; echo ready; while :; do sleep 0.2; done`, `kill {
    grace = "20s"
  }`))
	id, host, pids := c.startReady(t, "pausable")
	if st := c.call(http.MethodPost, "/api/v1/runs/"+id+"/signal", map[string]string{"signal": "SIGSTOP"}, nil); st != http.StatusAccepted && st != http.StatusOK {
		t.Fatalf("pause: status %d", st)
	}
	if stat, ok := awaitState(pids[0], 'T'); !ok {
		// What the wrapper says it did, and what the tree is, tell a
		// signal not sent from one undone.
		t.Fatalf("process %d never reached state T (stat %q; the tree %v alive); the run's system stream: %q",
			pids[0], stat, alive(pids), c.output(id, host, "system"))
	}
	start := time.Now()
	if st := c.call(http.MethodPost, "/api/v1/runs/"+id+"/kill", nil, nil); st != http.StatusAccepted {
		t.Fatalf("kill: status %d", st)
	}
	r := c.waitFinal(id, 30*time.Second)
	if r.Status != "killed" {
		t.Fatalf("run %s, want killed", r.Status)
	}
	// SIGTERM after SIGCONT ends the shell at once; needing the 20s grace
	// (and SIGKILL) would mean the paused tree never saw the signal.
	if took := time.Since(start); took >= 20*time.Second {
		t.Fatalf("paused job took %s to die, its grace is 20s", took)
	}
	if sys := c.output(id, host, "system"); strings.Contains(sys, "SIGKILL") {
		t.Errorf("a paused job needed SIGKILL: %q", sys)
	}
	// Who paused it and who killed it, and when, stay on the run.
	if len(r.Actions) != 2 || r.Actions[0].Kind != "signal" || r.Actions[0].Signal != "SIGSTOP" ||
		r.Actions[1].Kind != "kill" || r.Actions[0].By != "local" || r.Actions[1].By != "local" ||
		r.Actions[1].At.Before(r.Actions[0].At) || r.Actions[0].At.Before(r.StartedAt) {
		t.Errorf("run actions %+v, want the SIGSTOP then the kill, both by local", r.Actions)
	}
}

// waitState waits until /proc/pid/stat shows state s.
// awaitState waits up to 10 s for process pid to be in state s, and
// returns its last /proc stat line.
func awaitState(pid int, s byte) (string, bool) {
	var last string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil {
			last = string(b)
			if i := strings.LastIndexByte(last, ')'); i > 0 && i+2 < len(last) && last[i+2] == s {
				return last, true
			}
		}
		time.Sleep(10 * time.Millisecond) // polling /proc: no event says a process stopped
	}
	return last, false
}

func TestTimeoutGives124AndNoSurvivors(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("slow", treeJob, `timeout = "2s"`))
	id, host, pids := c.startReady(t, "slow")
	r := c.waitFinal(id, 30*time.Second)
	m := r.Machines[0]
	if r.Status != "timeout" || deref(m.ExitCode) != 124 || m.Reason != "timeout" {
		t.Fatalf("run %s machine %+v exit %v, want timeout/124", r.Status, m, deref(m.ExitCode))
	}
	if sys := c.output(id, host, "system"); !strings.Contains(sys, "[Job exceeded timeout of 2s]") {
		t.Errorf("system stream lacks the timeout note: %q", sys)
	}
	if a := alive(pids); len(a) > 0 {
		t.Fatalf("survivors after timeout: %v", a)
	}
}

// TestNoOutputTimeout: a job that keeps printing lives past its
// no_output_timeout; one that falls silent is killed with the kill policy
// once that long has passed since its last output: timeout/124 with the
// reason no_output_timeout, a note on the system stream, no survivors.
func TestNoOutputTimeout(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+
		job("silent", treeJob, `no_output_timeout = "1500ms"`)+
		job("chatty", `for i in 1 2 3 4 5 6 7 8 9 10; do echo "tick $i"; sleep 0.3; done`, `no_output_timeout = "1500ms"`))
	chatty := c.runNow("chatty")
	id, host, pids := c.startReady(t, "silent")
	r := c.waitFinal(id, 30*time.Second)
	m := r.Machines[0]
	if r.Status != "timeout" || deref(m.ExitCode) != 124 || m.Reason != "no_output_timeout" {
		t.Fatalf("silent run %s machine %+v exit %v, want timeout/124 with reason no_output_timeout", r.Status, m, deref(m.ExitCode))
	}
	if took := m.FinishedAt.Sub(m.StartedAt); took < 1500*time.Millisecond {
		t.Errorf("killed %s after its start, sooner than its no_output_timeout", took)
	}
	if sys := c.output(id, host, "system"); !strings.Contains(sys, "[Job exceeded no-output timeout of 1.5s]") {
		t.Errorf("system stream lacks the no-output timeout note: %q", sys)
	}
	if a := alive(pids); len(a) > 0 {
		t.Fatalf("survivors after the no-output timeout: %v", a)
	}
	if r := c.waitFinal(chatty, 30*time.Second); r.Status != "succeeded" {
		t.Fatalf("a job printing every 0.3s under a 1.5s no_output_timeout: %s, want succeeded", r.Status)
	}
}

func TestFrozenWrapperIsLost(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("frozen", `echo "pids $$"; echo ready; while :; do sleep 0.2; done`, ""))
	id, _, pids := c.startReady(t, "frozen")
	wrapper := parentOf(t, pids[0])
	t.Cleanup(func() { killPIDs([]int{wrapper}) })
	if err := syscall.Kill(wrapper, syscall.SIGSTOP); err != nil {
		t.Fatalf("freeze wrapper %d: %v", wrapper, err)
	}
	frozenAt := time.Now()
	r := c.waitRun(id, 30*time.Second, "lost", func(r run) bool { return len(r.Machines) == 1 && r.Machines[0].Status == "lost" })
	if took := time.Since(frozenAt); took < 2*time.Second-500*time.Millisecond {
		t.Errorf("lost after %s, sooner than the 2s heartbeat timeout allows", took)
	}
	if deref(r.Machines[0].ExitCode) != 253 {
		t.Fatalf("lost machine exit %v, want 253", deref(r.Machines[0].ExitCode))
	}
}

// parentOf reads the ppid from /proc/pid/stat.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read stat of %d: %v", pid, err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("parse ppid of %d: %v", pid, err)
	}
	return ppid
}

func TestOverlapSkipRefusesSecondRun(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("single", `echo ready; sleep 1000`, `overlap = "skip"`))
	id := c.runNow("single")
	c.waitRunning(id)
	var e struct {
		Code string `json:"code"`
	}
	if st := c.call(http.MethodPost, "/api/v1/jobs/single/run", nil, &e); st != http.StatusConflict || e.Code != "OVERLAP" {
		t.Fatalf("second run: status %d code %q, want 409 OVERLAP", st, e.Code)
	}
	if st := c.call(http.MethodPost, "/api/v1/runs/"+id+"/kill", nil, nil); st != http.StatusAccepted {
		t.Fatalf("kill: %d", st)
	}
	c.waitFinal(id, 30*time.Second)
	// Once the first run is over the job may run again.
	id2 := c.runNow("single")
	if id2 == id {
		t.Fatal("second run reused the first run's id")
	}
}

func TestScheduleFiresAndStopsWhenDisabled(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+`
job "tick" {
  schedule = "*/2 * * * * *"
  command  = "true"
  overlap  = "allow" # a slow machine must not turn a slot into a skip
  target "local" {}
}
`)
	runs := waitRuns(t, c, "tick", 3, 20*time.Second)
	for i := 1; i < len(runs); i++ {
		gap := runs[i-1].ScheduledFor.Sub(runs[i].ScheduledFor)
		if gap != 2*time.Second {
			t.Fatalf("slots %s and %s are %s apart, want 2s", runs[i].ScheduledFor, runs[i-1].ScheduledFor, gap)
		}
		if runs[i].Trigger != "schedule" {
			t.Fatalf("trigger %q, want schedule", runs[i].Trigger)
		}
	}
	for _, r := range runs {
		if lag := r.StartedAt.Sub(r.ScheduledFor); lag < 0 || lag > time.Second {
			t.Errorf("run for slot %s started at %s: %s late", r.ScheduledFor, r.StartedAt, lag)
		}
	}
	if st := c.call(http.MethodPost, "/api/v1/jobs/tick/disable", nil, nil); st != http.StatusOK {
		t.Fatalf("disable: %d", st)
	}
	disabledAt := time.Now()
	before := len(listRuns(t, c, "tick"))
	// Watch two whole periods: absence of a firing cannot be awaited.
	time.Sleep(4500 * time.Millisecond)
	after := listRuns(t, c, "tick")
	for _, r := range after {
		if r.ScheduledFor.After(disabledAt.Add(time.Second)) {
			t.Fatalf("run %s for slot %s fired after disabling at %s (%d runs before, %d after)", r.ID, r.ScheduledFor, disabledAt, before, len(after))
		}
	}
}

func listRuns(t *testing.T, c *core, job string) []run {
	t.Helper()
	var resp struct {
		Runs []run `json:"runs"`
	}
	if st := c.call(http.MethodGet, "/api/v1/runs?job="+job+"&limit=1000", nil, &resp); st != http.StatusOK {
		t.Fatalf("list runs: %d", st)
	}
	return resp.Runs
}

func waitRuns(t *testing.T, c *core, job string, n int, within time.Duration) []run {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		runs := listRuns(t, c, job)
		if len(runs) >= n {
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs of %s after %s, want %d", len(runs), job, within, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// childrenOf lists the pids whose parent is pid.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if pp, _ := strconv.Atoi(f[1]); pp == pid {
			out = append(out, n)
		}
	}
	return out
}

// TestCoreCrashLeavesJobsRunningAndNoPlugins SIGKILLs the core in the
// middle of a run: its plugin processes must go with it, while the
// detached wrapper and its job carry on.
func TestCoreCrashLeavesJobsRunningAndNoPlugins(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("survivor", `echo "pids $$"; echo ready; while :; do sleep 0.2; done`, ""))
	_, _, pids := c.startReady(t, "survivor")
	wrapper := parentOf(t, pids[0])
	t.Cleanup(func() { killPIDs([]int{wrapper}) })
	plugins := childrenOf(t, c.cmd.Process.Pid)
	if len(plugins) == 0 {
		t.Fatal("the core has no plugin process while a local job runs")
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL core: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(alive(plugins)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes %v outlived the core by 15s", alive(plugins))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a := alive(append(pids, wrapper)); len(a) != len(pids)+1 {
		t.Fatalf("the core's crash took the job with it: alive %v of job %v and wrapper %d", a, pids, wrapper)
	}
}
