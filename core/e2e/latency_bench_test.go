package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// firePrecisionWindow is measured per b.N.
const firePrecisionWindow = 30 * time.Second

// BenchmarkFirePrecision runs one job of `true` on the local target every
// second on an otherwise idle core and measures, for the slots of b.N ×
// 30 s, how late after the second boundary the core fired each: the
// run's started_at (the core takes it on its loop as the firing arrives,
// before the store write) against its scheduled_for, as p50-, p99- and
// max-ms; id-max-ms is the same against the millisecond the run's id
// carries (taken earlier still, when the run was reserved; it is rounded
// down to the millisecond). Percentiles are nearest-rank: below 101
// slots the p99 is the largest. bare-timer-p50/p99-ms are the baseline:
// how late a bare Go timer in the benchmark's process ends, waiting for
// the half seconds of the same window (bareTimerLateness), and
// x-of-bare-timer the p99 over theirs.
// Every slot of the window must have exactly one run, succeeded.
func BenchmarkFirePrecision(b *testing.B) {
	c := startCore(b, coreBlock("")+`
job "tick" {
  schedule = "@every 1s"
  command  = "true"
  target "local" {}
}
`)
	waitRunStatus(b, c, store.StatusSucceeded, 30*time.Second)
	b.ResetTimer()
	t0 := time.Now().Truncate(time.Second).Add(time.Second)
	t1 := t0.Add(time.Duration(b.N) * firePrecisionWindow)
	bare := bareTimerLateness(t0.Add(time.Second/2), t1) // the window is what is measured
	b.StopTimer()

	// The run of the window's last slot, final, says the window's runs
	// are all recorded.
	last := t1.Add(-time.Second)
	var runs []fleetRun
	deadline := time.Now().Add(30 * time.Second)
	for {
		runs = runsPaged(b, c, "job=tick", t0.Add(-2*time.Second))
		done := false
		for _, r := range runs {
			done = done || (r.ScheduledFor.Equal(last) && finished(r.run))
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("no final run of the slot %s within 30s of it", last.Format(time.RFC3339))
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[int64]int{}
	var late, idLate []time.Duration
	for _, r := range runs {
		if r.ScheduledFor.Before(t0) || !r.ScheduledFor.Before(t1) {
			continue
		}
		seen[r.ScheduledFor.Unix()]++
		if r.Status != store.StatusSucceeded || r.Trigger != store.TriggerSchedule {
			b.Fatalf("run %s of slot %s: %s (%s), want a scheduled run succeeded", r.ID, r.ScheduledFor, r.Status, r.Trigger)
		}
		at, err := runIDTime(r.ID)
		if err != nil {
			b.Fatal(err)
		}
		late = append(late, r.StartedAt.Sub(r.ScheduledFor))
		idLate = append(idLate, at.Sub(r.ScheduledFor))
	}
	slots := int(t1.Sub(t0) / time.Second)
	for s := t0; s.Before(t1); s = s.Add(time.Second) {
		if n := seen[s.Unix()]; n != 1 {
			b.Fatalf("slot %s has %d runs, want 1", s.Format(time.RFC3339), n)
		}
	}
	b.ReportMetric(msf(pct(late, 0.50)), "p50-ms")
	b.ReportMetric(msf(pct(late, 0.99)), "p99-ms")
	b.ReportMetric(msf(pct(late, 1)), "max-ms")
	b.ReportMetric(msf(pct(idLate, 1)), "id-max-ms")
	b.ReportMetric(msf(pct(bare, 0.50)), "bare-timer-p50-ms")
	b.ReportMetric(msf(pct(bare, 0.99)), "bare-timer-p99-ms")
	b.ReportMetric(msf(pct(late, 0.99))/msf(pct(bare, 0.99)), "x-of-bare-timer")
	b.Logf("%d slots from %s; started_at after the slot: min %s, p50 %s, max %s; a bare timer in this process, at the half seconds between: min %s, p50 %s, max %s",
		slots, t0.Format("15:04:05"), pct(late, 0), pct(late, 0.5), pct(late, 1), pct(bare, 0), pct(bare, 0.5), pct(bare, 1))
}

// bareTimerLateness waits with a Go timer for each whole second from
// first (a half second, between the core's firings, so that the two do
// not wake together) until end, and returns how late each wait ended:
// the machine's own timer and wake-up latency, the floor under the
// core's fire precision. Go's poller sleeps in whole milliseconds
// (epoll_wait), so a timer with less than one left sleeps one more.
func bareTimerLateness(first, end time.Time) []time.Duration {
	var late []time.Duration
	for at := first; at.Before(end); at = at.Add(time.Second) {
		t := time.NewTimer(time.Until(at))
		<-t.C
		late = append(late, time.Since(at))
	}
	time.Sleep(time.Until(end))
	return late
}

// runIDTime reads the millisecond a run id carries: its first 10
// Crockford base32 digits are the 48 bits of milliseconds since the
// epoch (core/runner's newRunID).
func runIDTime(id string) (time.Time, error) {
	const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	if len(id) != 26 {
		return time.Time{}, fmt.Errorf("run id %q: want 26 digits", id)
	}
	var ms int64
	for _, ch := range id[:10] {
		d := strings.IndexRune(crockford, ch)
		if d < 0 {
			return time.Time{}, fmt.Errorf("run id %q: %q is not a Crockford base32 digit", id, ch)
		}
		ms = ms<<5 | int64(d)
	}
	return time.UnixMilli(ms), nil
}

// BenchmarkKillLatencyP is BenchmarkKillLatency reported as percentiles:
// for a job that honours SIGTERM, the time from the kill request's
// arrival to the stored complete (both on the core's clock: killed_at and
// the machine's finished_at), p50-, p99- and max-ms over b.N kills, and
// wall-p99-ms from this process's request to the killed status seen
// through the API. The stored time is split at the hub's "kill sent" (the
// core's log, on the same clock): send-p50-ms is recording the kill and
// handing it to the wrapper's connection, terminate+complete-p50-ms the
// wrapper's kill policy and the complete's storing.
func BenchmarkKillLatencyP(b *testing.B) {
	c := startCore(b, coreBlock("")+job("victim", `echo ready; while :; do sleep 0.2; done`, `overlap = "allow"`))
	host := hostname(b)
	var stored, wall, send, terminate []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		id := c.runNow("victim")
		c.followUntil(id, host, "ready")
		b.StartTimer()
		start := time.Now()
		if st := c.call(http.MethodPost, "/api/v1/runs/"+id+"/kill", nil, nil); st != http.StatusAccepted {
			b.Fatalf("kill: %d", st)
		}
		c.waitRun(id, 30*time.Second, "killed machine", func(r run) bool {
			return len(r.Machines) == 1 && r.Machines[0].Status == "killed"
		})
		wall = append(wall, time.Since(start))
		var r fleetRun
		c.call(http.MethodGet, "/api/v1/runs/"+id, nil, &r)
		if r.KilledAt.IsZero() {
			b.Fatalf("run %s killed without killed_at: %+v", id, r)
		}
		stored = append(stored, r.Machines[0].FinishedAt.Sub(r.KilledAt))
		if sent := c.loggedAt(id, "kill sent"); !sent.IsZero() {
			send = append(send, sent.Sub(r.KilledAt))
			terminate = append(terminate, r.Machines[0].FinishedAt.Sub(sent))
		}
	}
	b.ReportMetric(msf(pct(stored, 0.50)), "p50-ms")
	b.ReportMetric(msf(pct(stored, 0.99)), "p99-ms")
	b.ReportMetric(msf(pct(stored, 1)), "max-ms")
	b.ReportMetric(msf(pct(wall, 0.99)), "wall-p99-ms")
	if len(send) > 0 {
		b.ReportMetric(msf(pct(send, 0.50)), "send-p50-ms")
		b.ReportMetric(msf(pct(terminate, 0.50)), "terminate+complete-p50-ms")
	}
}

// loggedAt is when the core logged msg for run id (its first such line,
// on the core's clock, as the run's stored times are), zero if it did not.
func (c *core) loggedAt(id, msg string) time.Time {
	for _, line := range strings.Split(c.logs.String(), "\n") {
		if !strings.Contains(line, id) || !strings.Contains(line, msg) {
			continue
		}
		var rec struct {
			Message string    `json:"@message"`
			At      time.Time `json:"@timestamp"`
			RunID   string    `json:"run_id"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Message == msg && rec.RunID == id {
			return rec.At
		}
	}
	return time.Time{}
}

// BenchmarkRunTrueP is BenchmarkRunTrue reported as percentiles: run now
// to the stored final result for a job running `true`, p50- and p99-ms
// over b.N runs, each phase's p50 from the run's own timestamps
// (dispatch-p50-ms: recorded to the target's answer; connect: to the
// wrapper's connect; start: to its start; exec+complete: to its
// complete; commit: to the run's final status), beside the same command
// run directly with /bin/sh -c (sh-direct-p50-ms) and the ratio of the
// p50s. Two phases are split further at lines of the core's log (its
// clock, as the stored times): record-p50-ms is the part of dispatch that
// records the run (to "run started"), bind-p50-ms the part of start that
// stores the connected machine (to "wrapper bound"); the rest of start is
// the connect ack's way to the wrapper and the job's start there.
func BenchmarkRunTrueP(b *testing.B) {
	c := startCore(b, coreBlock("")+job("noop", "true", `overlap = "allow"`))
	var dispatch, connect, start, execute, commit, total, wall, record, bind []time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		id := c.runNow("noop")
		r := c.waitFinal(id, 30*time.Second)
		wall = append(wall, time.Since(t0))
		if r.Status != "succeeded" || len(r.Machines) != 1 {
			b.Fatalf("run %+v", r)
		}
		m := r.Machines[0]
		dispatch = append(dispatch, m.DispatchedAt.Sub(r.StartedAt))
		connect = append(connect, m.ConnectedAt.Sub(m.DispatchedAt))
		start = append(start, m.StartedAt.Sub(m.ConnectedAt))
		execute = append(execute, m.FinishedAt.Sub(m.StartedAt))
		commit = append(commit, r.FinishedAt.Sub(m.FinishedAt))
		total = append(total, r.FinishedAt.Sub(r.StartedAt))
		if at := c.loggedAt(id, "run started"); !at.IsZero() {
			record = append(record, at.Sub(r.StartedAt))
		}
		if at := c.loggedAt(id, "wrapper bound"); !at.IsZero() {
			bind = append(bind, at.Sub(m.ConnectedAt))
		}
	}
	b.StopTimer()
	var direct []time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := exec.Command("/bin/sh", "-c", "true").Run(); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(t0))
	}
	b.ReportMetric(msf(pct(total, 0.50)), "p50-ms")
	b.ReportMetric(msf(pct(total, 0.99)), "p99-ms")
	b.ReportMetric(msf(pct(dispatch, 0.50)), "dispatch-p50-ms")
	b.ReportMetric(msf(pct(connect, 0.50)), "connect-p50-ms")
	b.ReportMetric(msf(pct(start, 0.50)), "start-p50-ms")
	b.ReportMetric(msf(pct(execute, 0.50)), "exec+complete-p50-ms")
	b.ReportMetric(msf(pct(commit, 0.50)), "commit-p50-ms")
	if len(record) > 0 && len(bind) > 0 {
		b.ReportMetric(msf(pct(record, 0.50)), "record-p50-ms")
		b.ReportMetric(msf(pct(bind, 0.50)), "bind-p50-ms")
	}
	b.ReportMetric(msf(pct(wall, 0.50)), "api-wall-p50-ms")
	b.ReportMetric(msf(pct(direct, 0.50)), "sh-direct-p50-ms")
	b.ReportMetric(float64(pct(total, 0.50))/float64(pct(direct, 0.50)), "x-of-direct")
}
