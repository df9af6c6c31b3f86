package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/plugins/sqlite"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// Figures of BenchmarkScheduledRuns.
const (
	loadWarmup = 5 * time.Second  // after the first run finished, before measuring
	loadWindow = 20 * time.Second // measured per b.N
)

// BenchmarkScheduledRuns runs a core on the default SQLite store with N
// jobs of `true` on the local target, each `@every 1s` with the default
// overlap = "skip": a demand of N runs a second, for N = 200 and the
// target's 500 (sub-benchmarks, a core each). After the first run
// has finished and a warm-up, it measures b.N windows of 20 s (one core
// for all of them: the figure is steady state, not start-up), then
// disables every job by a reload, waits until no run is in flight, and
// counts, from the HTTP API, the runs of the window:
//
//   - runs/s: runs that finished in the window, any status;
//   - succeeded/s: of those, the succeeded ones;
//   - started/s: runs the core recorded (started_at) in the window;
//   - fraction-of-demand: runs/s ÷ N;
//   - skipped/s: slots of the window the overlap policy skipped (from the
//     core's log: a skipped slot makes no run);
//   - unfired/s: slots of the window neither run nor skipped by the time
//     the jobs were disabled (the scheduler's backlog);
//   - fire-to-start-p50/p99-ms: the machine's started_at (the core's
//     clock when the wrapper's start frame came, the job running) −
//     scheduled_for, of the runs started in the window;
//   - lag-p50/p99/max-ms: started_at − scheduled_for of the runs started
//     in the window (the run recorded), and lag-growth-s/s the slope of that lag over the
//     window: 0 when the core keeps up, 1 − fraction-of-demand when the
//     scheduler's backlog grows (it blocks rather than drops a firing,
//     up to five minutes late);
//   - core-, store-, target-CPU-ms/run: CPU time of the core and of its
//     plugin processes (the target's includes the wrappers it started,
//     which it reaps, and so their jobs), and target-own-CPU-ms/run the
//     target plugin's without them;
//   - machine-CPU-ms/run: every process's CPU time per run, the
//     wrappers' and jobs' included, and runs/s-CPU-bound the runs a
//     second the machine's CPUs would carry at that cost (cpuBound).
//   - sh-burst-p99-ms: the baseline, measured before the core starts:
//     N `/bin/sh -c true` started at once by this process (as a
//     scheduled second starts N jobs with no jitter), the p99 of when
//     each had exited; x-of-sh-burst is fire-to-start-p99 ÷ that. The
//     processes alone, with no wrapper, core or store, say how soon N
//     jobs can have started on this machine at all.
//
// A sub-benchmark of 200 jobs with `jitter = "900ms"` spreads the
// dispatches over most of each second, as an operator would spread a
// fleet's; its fire-to-start counts from each run's due time, its slot
// plus its machine's share of the jitter (runner.JitterOf), and it has no
// burst to measure a baseline by.
//
// The core runs as deployed: the default heartbeats (every 5 s, lost
// after 30 s of silence; the e2e tests' 2 s would judge wrappers lost
// that an overloaded machine is slow to schedule), logging at info. The
// test process reads that log on the same two cores.
func BenchmarkScheduledRuns(b *testing.B) {
	for _, l := range []schedLoad{{200, 0}, {500, 0}, {200, benchJitter}} {
		b.Run(l.name(), func(b *testing.B) { scheduledRuns(b, l.jobs, l.jitter) })
	}
}

func scheduledRuns(b *testing.B, loadJobs int, jitter time.Duration) {
	jobsHCL := func(enabled bool) string {
		var sb strings.Builder
		sb.WriteString(fleetCoreBlock(""))
		for i := range loadJobs {
			fmt.Fprintf(&sb, `
job %q {
  schedule = "@every 1s"
  command  = "true"
  overlap  = "skip"
  enabled  = %t
%s  target "local" {}
}
`, loadJobName(i), enabled, jitterHCL(jitter))
		}
		return sb.String()
	}
	var burst time.Duration
	if jitter == 0 {
		burst = shBurst(b, loadJobs)
	}
	c := startCoreLogging(b, jobsHCL(true), "info")

	// The first finished run says the whole path works; then the warm-up.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var resp struct {
			Runs []run `json:"runs"`
		}
		if st := c.call(http.MethodGet, "/api/v1/runs?status=succeeded&limit=1", nil, &resp); st != http.StatusOK {
			b.Fatalf("list runs: status %d", st)
		}
		if len(resp.Runs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("no run succeeded within 60s of the core serving %d jobs", loadJobs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(loadWarmup) // the warm-up is part of the measurement's design

	window := time.Duration(b.N) * loadWindow
	corePID := c.cmd.Process.Pid
	store0, target0 := pluginOf(b, corePID, "store"), pluginOf(b, corePID, "target")
	cpu0 := []time.Duration{procCPU(b, corePID), procCPU(b, store0), procCPU(b, target0), procOwnCPU(b, target0)}
	busy0, all0 := machineCPU(b)
	load0 := loadavg()
	b.ResetTimer()
	t0 := time.Now()
	time.Sleep(window) // the window is what is measured
	t1 := time.Now()
	b.StopTimer()
	cpu1 := []time.Duration{procCPU(b, corePID), procCPU(b, store0), procCPU(b, target0), procOwnCPU(b, target0)}
	busy1, all1 := machineCPU(b)
	load1 := loadavg()
	if pluginOf(b, corePID, "store") != store0 || pluginOf(b, corePID, "target") != target0 {
		b.Fatalf("a plugin process was restarted during the window")
	}

	// Stop the firing, then let every run in flight end, so that the
	// runs started in the window are final when counted and the core
	// stops with no wrapper left.
	if err := os.WriteFile(filepath.Join(c.dir, "config.hcl"), []byte(jobsHCL(false)), 0o644); err != nil {
		b.Fatal(err)
	}
	var reloadErr struct {
		Code string `json:"code"`
	}
	if st := c.call(http.MethodPost, "/api/v1/reload", nil, &reloadErr); st != http.StatusOK {
		b.Fatalf("reload disabling the jobs: status %d %s", st, reloadErr.Code)
	}
	disabled := time.Now()
	drained := waitNoActive(b, c, 2*time.Minute)

	var all []run
	for i := range loadJobs {
		all = append(all, allRuns(b, c, "job="+loadJobName(i))...)
	}
	in := func(t time.Time) bool { return !t.Before(t0) && t.Before(t1) }
	var finishedN, succeededN, startedN, slotRuns int
	statuses := map[string]int{}
	var lags, toStart []time.Duration
	var fit lineFit // lag against start time: how fast the backlog grows
	for _, r := range all {
		if r.Trigger != store.TriggerSchedule {
			b.Fatalf("run %s of %s has trigger %q, want schedule", r.ID, r.Job, r.Trigger)
		}
		if !finished(r) {
			b.Fatalf("run %s of %s is %q after the drain", r.ID, r.Job, r.Status)
		}
		if in(r.FinishedAt) {
			finishedN++
			statuses[r.Status]++
			if r.Status == store.StatusSucceeded {
				succeededN++
			}
		}
		if in(r.StartedAt) {
			startedN++
			lags = append(lags, r.StartedAt.Sub(r.ScheduledFor))
			if len(r.Machines) == 1 && !r.Machines[0].StartedAt.IsZero() {
				toStart = append(toStart, r.Machines[0].StartedAt.Sub(dueAt(r, jitter)))
			}
			fit.add(r.StartedAt.Sub(t0).Seconds(), r.StartedAt.Sub(r.ScheduledFor).Seconds())
		}
		if in(r.ScheduledFor) {
			slotRuns++
		}
	}
	skips := loadLogCount(c, "scheduled run skipped", in)
	notFired := loadLogCount(c, "skipped slot not recorded: it may be caught up later", in) +
		loadLogCount(c, "scheduled run not started", in)
	demand := int(window/time.Second) * loadJobs
	if finishedN == 0 || startedN == 0 {
		b.Fatalf("no run finished (%d) or started (%d) in the %s window; %d runs in all", finishedN, startedN, window, len(all))
	}
	if notFired > 0 {
		b.Errorf("%d slots of the window failed to fire or start (see the core log)", notFired)
	}
	secs := window.Seconds()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

	b.ReportMetric(float64(finishedN)/secs, "runs/s")
	b.ReportMetric(float64(succeededN)/secs, "succeeded/s")
	b.ReportMetric(float64(startedN)/secs, "started/s")
	b.ReportMetric(float64(finishedN)/secs/float64(loadJobs), "fraction-of-demand")
	b.ReportMetric(float64(skips)/secs, "skipped/s")
	b.ReportMetric(float64(max(0, demand-slotRuns-skips))/secs, "unfired/s")
	if len(toStart) == 0 {
		b.Fatalf("no run started in the window has its machine's start recorded")
	}
	b.ReportMetric(msf(pct(toStart, 0.50)), "fire-to-start-p50-ms")
	b.ReportMetric(msf(pct(toStart, 0.99)), "fire-to-start-p99-ms")
	if burst > 0 {
		b.ReportMetric(msf(burst), "sh-burst-p99-ms")
		b.ReportMetric(float64(pct(toStart, 0.99))/float64(burst), "x-of-sh-burst")
	}
	b.ReportMetric(msf(pct(lags, 0.50)), "lag-p50-ms")
	b.ReportMetric(msf(pct(lags, 0.99)), "lag-p99-ms")
	b.ReportMetric(msf(pct(lags, 1)), "lag-max-ms")
	b.ReportMetric(fit.slope(), "lag-growth-s/s")
	perRun := func(d time.Duration) float64 { return ms(d) / float64(startedN) }
	b.ReportMetric(perRun(cpu1[0]-cpu0[0]), "core-CPU-ms/run")
	b.ReportMetric(perRun(cpu1[1]-cpu0[1]), "store-CPU-ms/run")
	b.ReportMetric(perRun(cpu1[2]-cpu0[2]), "target-CPU-ms/run")
	b.ReportMetric(perRun(cpu1[3]-cpu0[3]), "target-own-CPU-ms/run")
	machineMS := perRun(time.Duration(busy1-busy0) * clockTick)
	b.ReportMetric(machineMS, "machine-CPU-ms/run")
	b.ReportMetric(cpuBound(machineMS), "runs/s-CPU-bound")
	b.Logf("in the window the machine's CPUs were %.0f%% busy (every process, other work on the machine included), load average %s -> %s; core %s, store plugin %s, target plugin with the wrappers it reaped %s of CPU",
		100*float64(busy1-busy0)/float64(all1-all0), load0, load1,
		(cpu1[0] - cpu0[0]).Round(time.Millisecond), (cpu1[1] - cpu0[1]).Round(time.Millisecond), (cpu1[2] - cpu0[2]).Round(time.Millisecond))
	b.Logf("window %s: %d slots demanded, %d runs for them, %d skipped; %d runs finished %v, %d started; drained %s after disabling; %d runs stored in all",
		window.Round(time.Millisecond), demand, slotRuns, skips, finishedN, statuses, startedN,
		drained.Sub(disabled).Round(time.Millisecond), len(all))
}

// lineFit is a least-squares line through points.
type lineFit struct{ n, sx, sy, sxx, sxy float64 }

func (f *lineFit) add(x, y float64) {
	f.n++
	f.sx += x
	f.sy += y
	f.sxx += x * x
	f.sxy += x * y
}

func (f *lineFit) slope() float64 {
	d := f.n*f.sxx - f.sx*f.sx
	if d == 0 {
		return 0
	}
	return (f.n*f.sxy - f.sx*f.sy) / d
}

func loadJobName(i int) string { return fmt.Sprintf("j%03d", i) }

// waitNoActive waits until the store holds no run in flight, and returns
// when it saw that.
func waitNoActive(tb testing.TB, c *core, within time.Duration) time.Time {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		var resp struct {
			Runs []run `json:"runs"`
		}
		if st := c.call(http.MethodGet, "/api/v1/runs?status=active&limit=1000", nil, &resp); st != http.StatusOK {
			tb.Fatalf("list active runs: status %d", st)
		}
		if len(resp.Runs) == 0 {
			return time.Now()
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d runs still in flight %s after the jobs were disabled, e.g. %+v", len(resp.Runs), within, resp.Runs[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allRuns is every run the query (e.g. "job=x") selects, newest first
// (see runsPaged).
func allRuns(tb testing.TB, c *core, query string) []run {
	tb.Helper()
	paged := runsPaged(tb, c, query, time.Time{})
	out := make([]run, len(paged))
	for i, r := range paged {
		out[i] = r.run
	}
	return out
}

// loadLogCount counts the core's log records with the message whose slot
// is one in(slot) accepts.
func loadLogCount(c *core, msg string, in func(time.Time) bool) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(c.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), msg) {
			continue
		}
		var rec struct {
			Message string    `json:"@message"`
			Slot    time.Time `json:"slot"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Message == msg && in(rec.Slot) {
			n++
		}
	}
	return n
}

// Figures of BenchmarkCoreRSSWithStoredRuns.
const (
	rssRuns      = 10000
	rssJobs      = 20
	rssOutput    = 200 // bytes per run
	rssRunsApart = time.Second
)

// BenchmarkCoreRSSWithStoredRuns measures the resident memory of a core
// and of its SQLite store plugin when the store holds 10,000 finished
// runs (one machine each, 200 bytes of output), beside a core on an empty
// store measured in the same run ("empty-" figures). The database is
// written directly with the plugin's package before the core starts.
// Each core is measured three times:
//
//   - core-RSS-start-MiB: as soon as it serves; a core that loaded its
//     history at start would show it here;
//   - core-RSS-MiB, store-plugin-RSS-MiB: after an operator's look around
//     (the jobs with their last runs, the first page of runs, the next
//     two pages, one job's latest runs, one run and its output);
//   - *-paged-MiB: after paging through every run, 1000 a page, which is
//     how the benchmark checks that the API holds all 10,000;
//
// and core-HWM-MiB, store-plugin-HWM-MiB are the peaks over its whole
// life, the paging included. The figures are means over b.N cores of
// each kind.
func BenchmarkCoreRSSWithStoredRuns(b *testing.B) {
	host := hostname(b)
	dir := b.TempDir()
	full := filepath.Join(dir, "full", "state.db")
	empty := filepath.Join(dir, "empty", "state.db")
	start := time.Now()
	ids := populateRuns(b, full, host)
	b.Logf("wrote %d runs to %s in %s (%s)", rssRuns, full, time.Since(start).Round(time.Millisecond), fileSizes(full))

	config := func(path string) string {
		var sb strings.Builder
		sb.WriteString(coreBlock(""))
		fmt.Fprintf(&sb, "store \"sqlite\" {\n  path = %q\n}\n", path)
		for j := range rssJobs {
			sb.WriteString(job(rssJobName(j), "true", ""))
		}
		return sb.String()
	}
	fullM, emptyM := map[string]float64{}, map[string]float64{}
	b.ResetTimer()
	for range b.N {
		for k, v := range measureCore(b, config(empty), 0, "", host) {
			emptyM[k] += v / float64(b.N)
		}
		for k, v := range measureCore(b, config(full), rssRuns, ids[len(ids)/2], host) {
			fullM[k] += v / float64(b.N)
		}
	}
	b.StopTimer()
	for k, v := range fullM {
		b.ReportMetric(v, k)
		b.ReportMetric(emptyM[k], "empty-"+k)
	}
	b.ReportMetric(fullM["core-RSS-MiB"]/emptyM["core-RSS-MiB"], "RSS-ratio-vs-empty")
	b.ReportMetric(fullM["core-RSS-start-MiB"]/emptyM["core-RSS-start-MiB"], "start-RSS-ratio-vs-empty")
	b.ReportMetric(fullM["core-RSS-paged-MiB"]/emptyM["core-RSS-paged-MiB"], "paged-RSS-ratio-vs-empty")
}

func rssJobName(i int) string { return fmt.Sprintf("job-%02d", i) }

// populateRuns writes rssRuns finished runs to a new SQLite database at
// path, spread over rssJobs jobs, started one second apart ending a
// minute ago (well inside the default retention), and returns their
// ids oldest first.
func populateRuns(b *testing.B, path, host string) []string {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: path})
	if err != nil {
		b.Fatalf("open %s: %v", path, err)
	}
	line := strings.Repeat("x", rssOutput-1) + "\n"
	first := time.Now().Add(-time.Minute - rssRuns*rssRunsApart).UTC().Truncate(time.Millisecond)
	ids := make([]string, 0, rssRuns)
	var batch []store.Append
	flush := func() {
		res, err := st.AppendBatch(ctx, batch)
		if err != nil {
			b.Fatalf("append output: %v", err)
		}
		for i, r := range res {
			if r.Err != nil || r.Next != 1 {
				b.Fatalf("append output to run %s: next %d, %v", batch[i].RunID, r.Next, r.Err)
			}
		}
		batch = batch[:0]
	}
	zero := 0
	for i := range rssRuns {
		id := fmt.Sprintf("01BENCH%019d", i)
		started := first.Add(time.Duration(i) * rssRunsApart)
		ended := started.Add(150 * time.Millisecond)
		jobName := rssJobName(i % rssJobs)
		spec, err := json.Marshal(map[string]any{"job": jobName, "command": "true"})
		if err != nil {
			b.Fatal(err)
		}
		m := store.Machine{Machine: host, Status: store.StatusSucceeded, ExitCode: &zero, Reason: "exit",
			PID: 10000 + i, DispatchedAt: started.Add(10 * time.Millisecond), ConnectedAt: started.Add(20 * time.Millisecond),
			StartedAt: started.Add(30 * time.Millisecond), FinishedAt: ended.Add(-10 * time.Millisecond),
			LastHeartbeat: ended.Add(-10 * time.Millisecond), WrapperVersion: "bench", Protocol: 2}
		r := store.Run{ID: id, Job: jobName, Trigger: store.TriggerSchedule, ScheduledFor: started,
			StartedAt: started, FinishedAt: ended, Status: store.StatusSucceeded, RequestedBy: "scheduler",
			Spec: spec, Machines: []store.Machine{m}}
		if err := st.CreateRun(ctx, r); err != nil {
			b.Fatalf("create run %d: %v", i, err)
		}
		batch = append(batch, store.Append{RunID: id, Machine: host,
			Chunk: store.Chunk{Seq: 0, Stream: "stdout", Data: []byte(line), At: ended.Add(-20 * time.Millisecond)}})
		if len(batch) == 500 {
			flush()
		}
		ids = append(ids, id)
	}
	if len(batch) > 0 {
		flush()
	}
	if err := st.Close(); err != nil {
		b.Fatalf("close %s: %v", path, err)
	}
	return ids
}

// measureCore starts a core on hcl, measures its and its store plugin's
// memory as BenchmarkCoreRSSWithStoredRuns describes, checking on the way
// that the API shows wantRuns runs (and, when sample is set, that run
// with its output), and stops it.
func measureCore(b *testing.B, hcl string, wantRuns int, sample, host string) map[string]float64 {
	b.Helper()
	c := startCore(b, hcl)
	defer c.stop(syscall.SIGTERM)
	corePID := c.cmd.Process.Pid
	storePID := pluginOf(b, corePID, "store")
	m := map[string]float64{}
	m["core-RSS-start-MiB"], _ = procMem(b, corePID)

	// An operator's look around.
	var jobs struct {
		Jobs []struct {
			Name    string `json:"name"`
			LastRun *struct {
				ID string `json:"id"`
			} `json:"last_run"`
		} `json:"jobs"`
	}
	if st := c.call(http.MethodGet, "/api/v1/jobs", nil, &jobs); st != http.StatusOK || len(jobs.Jobs) != rssJobs {
		b.Fatalf("GET /api/v1/jobs: status %d, %d jobs, want %d", st, len(jobs.Jobs), rssJobs)
	}
	for _, j := range jobs.Jobs {
		if (j.LastRun != nil) != (wantRuns > 0) {
			b.Fatalf("job %s: last run %+v with %d runs stored", j.Name, j.LastRun, wantRuns)
		}
	}
	var page struct {
		Runs []run `json:"runs"`
	}
	before := ""
	seen := 0
	for range 3 {
		path := "/api/v1/runs"
		if before != "" {
			path += "?before=" + url.QueryEscape(before)
		}
		if st := c.call(http.MethodGet, path, nil, &page); st != http.StatusOK {
			b.Fatalf("GET %s: status %d", path, st)
		}
		seen += len(page.Runs)
		if len(page.Runs) > 0 {
			before = page.Runs[len(page.Runs)-1].ID
		}
	}
	if want := min(wantRuns, 150); seen != want {
		b.Fatalf("three pages of runs held %d runs, want %d", seen, want)
	}
	if st := c.call(http.MethodGet, "/api/v1/runs?job="+rssJobName(3)+"&limit=20", nil, &page); st != http.StatusOK || len(page.Runs) != min(wantRuns, 20) {
		b.Fatalf("latest runs of %s: status %d, %d runs", rssJobName(3), st, len(page.Runs))
	}
	if sample != "" {
		r := c.run(sample)
		if r.Status != store.StatusSucceeded || len(r.Machines) != 1 || r.Machines[0].OutputBytes != rssOutput {
			b.Fatalf("run %s: %+v", sample, r)
		}
		if out := c.output(sample, host, ""); len(out) != rssOutput {
			b.Fatalf("run %s output: %d bytes, want %d", sample, len(out), rssOutput)
		}
	}
	m["core-RSS-MiB"], _ = procMem(b, corePID)
	m["store-plugin-RSS-MiB"], _ = procMem(b, storePID)

	// Every run, page by page: the count the API holds.
	if got := allRuns(b, c, ""); len(got) != wantRuns {
		b.Fatalf("the API pages through %d runs, want %d", len(got), wantRuns)
	}
	m["core-RSS-paged-MiB"], m["core-HWM-MiB"] = procMem(b, corePID)
	m["store-plugin-RSS-paged-MiB"], m["store-plugin-HWM-MiB"] = procMem(b, storePID)
	if pluginOf(b, corePID, "store") != storePID {
		b.Fatalf("the store plugin was restarted while measured")
	}
	b.Logf("%d runs: core RSS %.1f MiB at start, %.1f after a look around, %.1f after paging through every run (peak %.1f); store plugin RSS %.1f, %.1f (peak %.1f)",
		wantRuns, m["core-RSS-start-MiB"], m["core-RSS-MiB"], m["core-RSS-paged-MiB"], m["core-HWM-MiB"],
		m["store-plugin-RSS-MiB"], m["store-plugin-RSS-paged-MiB"], m["store-plugin-HWM-MiB"])
	return m
}

// pluginOf finds the core's plugin process of the kind ("store",
// "target"): the built-in ones are the saltpeter binary re-executed as
// `saltpeter plugin KIND NAME`.
func pluginOf(tb testing.TB, corePID int, kind string) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatalf("read /proc: %v", err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := procStat(pid)
		if err != nil {
			continue
		}
		if pp, _ := strconv.Atoi(f[1]); pp != corePID {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.Contains(string(cmdline), "plugin\x00"+kind+"\x00") {
			return pid
		}
	}
	tb.Fatalf("the core %d has no %s plugin process", corePID, kind)
	return 0
}

// procStat returns the fields of /proc/PID/stat after the command's name,
// the state first.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return nil, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return strings.Fields(s[i+2:]), nil
}

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// procCPU returns the CPU time a process used, its reaped children's
// included (utime, stime, cutime, cstime).
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	return procTicks(tb, pid, 15)
}

// procOwnCPU returns the CPU time a process used itself, without its
// reaped children's.
func procOwnCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	return procTicks(tb, pid, 13)
}

// procTicks sums the process's CPU times in its stat from utime up to
// the field at end (counted after the command): 13 takes utime and
// stime, 15 cutime and cstime too.
func procTicks(tb testing.TB, pid, end int) time.Duration {
	tb.Helper()
	f, err := procStat(pid)
	if err != nil || len(f) < end {
		tb.Fatalf("stat of %d: %v", pid, err)
	}
	var ticks int64
	for _, v := range f[11:end] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			tb.Fatalf("stat of %d: %q: %v", pid, v, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick
}

// machineCPU returns the machine's busy and total CPU ticks.
func machineCPU(tb testing.TB) (busy, total int64) {
	tb.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		tb.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		tb.Fatalf("/proc/stat: %q", line)
	}
	for i, v := range f[1:8] { // user nice system idle iowait irq softirq
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			tb.Fatalf("/proc/stat: %q: %v", line, err)
		}
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total
}

// cpuBound is how many units a second the machine's CPUs would carry,
// all of them busy, at ms of CPU (every process's) a unit: the ceiling
// that what a run or a MiB costs puts on a rate, however well the work
// overlaps.
func cpuBound(ms float64) float64 { return float64(runtime.NumCPU()) * 1000 / ms }

// loadavg is the machine's one-minute load average, for the log.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// procMem reads a process's VmRSS and VmHWM, in MiB.
func procMem(tb testing.TB, pid int) (rss, hwm float64) {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatalf("read status of %d: %v", pid, err)
	}
	found := 0
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			tb.Fatalf("status of %d: %q: %v", pid, line, err)
		}
		if k == "VmRSS" {
			rss = kb / 1024
		} else {
			hwm = kb / 1024
		}
		found++
	}
	if found != 2 {
		tb.Fatalf("status of %d has no VmRSS and VmHWM:\n%s", pid, data)
	}
	return rss, hwm
}

// fileSizes describes the database's files on disk.
func fileSizes(path string) string {
	var parts []string
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			parts = append(parts, fmt.Sprintf("%s %.1f MiB", filepath.Base(p), float64(fi.Size())/(1<<20)))
		}
	}
	return strings.Join(parts, ", ")
}

// shBurst starts n `/bin/sh -c true` at once, each from a goroutine of
// its own, and returns the p99 of the time from the start of the burst
// to each one's exit.
func shBurst(b *testing.B, n int) time.Duration {
	b.Helper()
	done := make([]time.Duration, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := exec.Command("/bin/sh", "-c", "true").Run(); err != nil {
				errs <- err
				return
			}
			done[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("burst of %d /bin/sh -c true: %v", n, err)
	}
	return pct(done, 0.99)
}
