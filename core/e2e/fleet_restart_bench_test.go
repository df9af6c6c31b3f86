package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/loadgen"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// Figures of BenchmarkFleetRestart: as many wrappers as
// BenchmarkIdleConnections holds over ws, as many a job.
const (
	restartConns  = idleConnsWS
	restartPerJob = idleJobWS
)

// BenchmarkFleetRestart crashes a core holding a fleet: jobs of 250 sim
// machines each running `sim duration=forever term=honour` over ws, with
// the production defaults (heartbeats every 5 s, a heartbeat timeout of
// 30 s), 12,000 machines in all, connected and running. b.N times, it
// SIGKILLs the core and starts it again on the same address and store;
// every wrapper (the load generator's, with the real wrapper's back-off
// and no bound on its dials) finds its connection gone and reconnects
// with resume, all of them at once. For each restart:
//
//   - reconnect-s: from the new core serving until the load generator
//     has every machine's resume acked and connected, and the core counts
//     them all connected and running (the max over the restarts, and
//     reconnect-s-median);
//   - core-CPU-s, store-CPU-s: what the core and its store plugin spent
//     over that time (the max over the restarts);
//   - core-RSS-peak-MiB: the most resident memory the restarted core
//     held (its high-water mark once all are back), and
//     core-RSS-MiB-settled what it holds once it has given the storm's
//     memory back (it settles its heap when the machines it took over
//     are back, and logs "heap settled after the takeover"); the max
//     over the restarts of each.
//
// A restart must lose nothing: no wrapper given up, no machine the store
// holds other than running once they are back, and each job's kill
// afterwards ends every machine killed.
func BenchmarkFleetRestart(b *testing.B) {
	simBin := simPlugin(b)
	lg, sock := startFleetLoadgen(b, 0)
	jobs := restartConns / restartPerJob
	var sb strings.Builder
	fmt.Fprintf(&sb, "core {\n  listen = \"127.0.0.1:%d\"\n  heartbeat_interval = \"5s\"\n  connect_deadline = \"10m\"\n}\n", freePort(b))
	sb.WriteString(simPluginBlock(simBin, sock))
	writeForeverJobs(&sb, jobs, restartPerJob)
	c, tally := startFleetCore(b, sb.String())

	// The fleet, one job at a time as BenchmarkIdleConnections starts it.
	ids := make([]string, jobs)
	for i := range ids {
		ids[i] = c.runNow(fleetJobName(i))
		awaitFleet(b, c, lg, int64((i+1)*restartPerJob), (i+1)*restartPerJob, 5*time.Minute, tally)
	}

	var took, coreCPU, storeCPU []time.Duration
	var peakMax, settledMax float64
	b.ResetTimer()
	for round := range b.N {
		c.stop(syscall.SIGKILL)
		launchFleetCore(b, c, tally)
		t0 := time.Now()
		pids := fleetPIDs(b, c)
		cpu0 := pids.cpu(b)
		// Every machine resumed once more than in the round before.
		awaitFleet(b, c, lg, restartConns, restartConns*(round+2), 5*time.Minute, tally)
		took = append(took, time.Since(t0))
		cpu1 := pids.cpu(b)
		coreCPU, storeCPU = append(coreCPU, cpu1[0]-cpu0[0]), append(storeCPU, cpu1[1]-cpu0[1])
		_, peak := procMem(b, pids.core)
		peakMax = max(peakMax, peak)
		b.StopTimer()
		// The first core's start took over nothing: each restart's core
		// settles once.
		for deadline := time.Now().Add(time.Minute); tally.count("info", settledMsg) < round+1; {
			if time.Now().After(deadline) {
				b.Fatalf("restart %d: no %q within a minute of the machines' return\n%s", round+1, settledMsg, tally)
			}
			time.Sleep(50 * time.Millisecond)
		}
		settled, _ := procMem(b, pids.core)
		settledMax = max(settledMax, settled)
		statuses := map[string]int{}
		for _, r := range runsPaged(b, c, "status=active", time.Time{}) {
			for _, m := range r.Machines {
				statuses[m.Status]++
			}
		}
		if statuses[store.StatusRunning] != restartConns || len(statuses) != 1 {
			b.Fatalf("restart %d: the store holds the fleet's machines %v, want %d running\n%s", round+1, statuses, restartConns, tally)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(pct(took, 1).Seconds(), "reconnect-s")
	b.ReportMetric(pct(took, 0.5).Seconds(), "reconnect-s-median")
	b.ReportMetric(pct(coreCPU, 1).Seconds(), "core-CPU-s")
	b.ReportMetric(pct(storeCPU, 1).Seconds(), "store-CPU-s")
	b.ReportMetric(peakMax, "core-RSS-peak-MiB")
	b.ReportMetric(settledMax, "core-RSS-MiB-settled")
	b.Logf("%d machines back in %v after each restart (core CPU %v, store CPU %v); %s", restartConns, took, coreCPU, storeCPU, tally.short(10))

	b.Logf("killed in %s", killFleet(b, c, ids, restartPerJob).Round(time.Millisecond))
}

// settledMsg is what the core logs once it gave a takeover's memory back.
const settledMsg = "heap settled after the takeover"

// awaitFleet waits until the load generator has connected machines and
// has had connects connect acks (first connects and resumes), and the
// core counts connected wrappers and running machines; it fails when a
// wrapper gives up or a dispatch is refused. It reads the load
// generator's counters alone: copying every record under its lock, ten
// times a second, would slow the storm it measures.
func awaitFleet(tb testing.TB, c *core, lg *loadgen.Server, connected int64, connects int, within time.Duration, tally *coreLog) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		st := lg.Stats(false)
		n := int(st.ConnectAcks)
		if st.Failed > 0 || st.Refused > 0 {
			tb.Fatalf("the load generator gave up on %d wrappers and had %d dispatches refused\n%s", st.Failed, st.Refused, tally)
		}
		if st.Connected == connected && n == connects &&
			coreMetric(tb, c, "saltpeter_connected_wrappers") == float64(connected) &&
			coreMetric(tb, c, "saltpeter_running_machines") == float64(connected) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %d of %d wrappers connected, %d of %d connect acks; the core counts %v connected, %v running\n%s",
				within, st.Connected, connected, n, connects, coreMetric(tb, c, "saltpeter_connected_wrappers"),
				coreMetric(tb, c, "saltpeter_running_machines"), tally)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
