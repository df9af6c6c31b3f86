package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Figures of BenchmarkManyJobs.
const (
	manyJobs     = 10000
	manyJobsIdle = 10 * time.Second // from serving to the memory's measure
)

// BenchmarkManyJobs starts a core on the default SQLite store with 10,000
// job definitions of the local target, each daily at a time of its own
// (cron, spread over the six hours that start six hours from now, so that
// none fires while measured), and measures, per core (b.N of them, one
// after the other):
//
//   - start-s: from exec to the core's "core serving" log record (the
//     configuration read and checked, the store plugin started, the
//     scheduler fed), and start-CPU-s the core's CPU time by then, which
//     a busy machine stretches less than the wall time;
//   - core-RSS-MiB: its resident memory 10 s later, idle, and
//     store-RSS-MiB its store plugin's; core-RSS-peak-MiB its peak by
//     then (the start's); core-CPU-% its CPU over those 10 s, and
//     store-CPU-% its store plugin's (the store calls of a core that
//     serves, such as catch-up's reads, show in both);
//   - jobs-list-s: then GET /api/v1/jobs, which must list the 10,000 (an
//     operator's first look), and core-RSS-listed-MiB after it.
func BenchmarkManyJobs(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(fleetCoreBlock(""))
	base := time.Now().UTC().Add(6 * time.Hour)
	for i := range manyJobs {
		at := base.Add(time.Duration(i%360) * time.Minute)
		fmt.Fprintf(&sb, `
job %q {
  schedule = "%d %d * * *"
  command  = "true"
  target "local" {}
}
`, fleetJobName(i), at.Minute(), at.Hour())
	}
	hcl := sb.String()
	var startS, startCPU, rss, peak, storeRSS, cpu, storeCPU, listS, listedRSS float64
	for range b.N {
		c, tally := startFleetCore(b, hcl)
		pids := fleetPIDs(b, c)
		cpu0, storeCPU0 := procCPU(b, pids.core), procCPU(b, pids.store)
		time.Sleep(manyJobsIdle) // the idle time is part of the measurement's design
		cpu += 100 * (procCPU(b, pids.core) - cpu0).Seconds() / manyJobsIdle.Seconds()
		storeCPU += 100 * (procCPU(b, pids.store) - storeCPU0).Seconds() / manyJobsIdle.Seconds()
		startCPU += cpu0.Seconds()
		r, hwm := procMem(b, pids.core)
		s, _ := procMem(b, pids.store)
		t0 := time.Now()
		var jobs struct {
			Jobs []struct {
				Name string `json:"name"`
			} `json:"jobs"`
		}
		if st := c.call(http.MethodGet, "/api/v1/jobs", nil, &jobs); st != http.StatusOK || len(jobs.Jobs) != manyJobs {
			b.Fatalf("GET /api/v1/jobs: status %d, %d jobs, want %d", st, len(jobs.Jobs), manyJobs)
		}
		listS += time.Since(t0).Seconds()
		l, _ := procMem(b, pids.core)
		startS += tally.served.Seconds()
		rss += r
		peak += hwm
		storeRSS += s
		listedRSS += l
		b.Logf("served %s after exec; RSS %.1f MiB idle, %.1f after listing the jobs; %.0f goroutines; %s",
			tally.served.Round(time.Millisecond), r, l, coreMetric(b, c, "go_goroutines"), tally.short(12))
		c.stop(syscall.SIGTERM)
	}
	n := float64(b.N)
	b.ReportMetric(startS/n, "start-s")
	b.ReportMetric(startCPU/n, "start-CPU-s")
	b.ReportMetric(rss/n, "core-RSS-MiB")
	b.ReportMetric(peak/n, "core-RSS-peak-MiB")
	b.ReportMetric(storeRSS/n, "store-RSS-MiB")
	b.ReportMetric(cpu/n, "core-CPU-%")
	b.ReportMetric(storeCPU/n, "store-CPU-%")
	b.ReportMetric(listS/n, "jobs-list-s")
	b.ReportMetric(listedRSS/n, "core-RSS-listed-MiB")
}
