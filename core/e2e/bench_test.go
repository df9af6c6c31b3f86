package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkKillLatency measures, for a job that honours SIGTERM, the time
// from the kill request's arrival to the stored complete (both on the
// core's clock: killed_at and the machine's finished_at).
func BenchmarkKillLatency(b *testing.B) {
	c := startCore(b, coreBlock("")+job("victim", `echo ready; while :; do sleep 0.2; done`, `overlap = "allow"`))
	host := hostname(b)
	var total, wall time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		id := c.runNow("victim")
		c.followUntil(id, host, "ready")
		b.StartTimer()
		start := time.Now()
		if st := c.call(http.MethodPost, "/api/v1/runs/"+id+"/kill", nil, nil); st != http.StatusAccepted {
			b.Fatalf("kill: %d", st)
		}
		r := c.waitRun(id, 30*time.Second, "killed machine", func(r run) bool {
			return len(r.Machines) == 1 && r.Machines[0].Status == "killed"
		})
		wall += time.Since(start)
		var kr struct {
			KilledAt time.Time `json:"killed_at"`
		}
		c.call(http.MethodGet, "/api/v1/runs/"+id, nil, &kr)
		total += r.Machines[0].FinishedAt.Sub(kr.KilledAt)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/kill-to-stored")
	b.ReportMetric(float64(wall.Microseconds())/float64(b.N)/1000, "ms/kill-wall")
}

// BenchmarkRunTrue measures run-now to the stored final result for a job
// running `true`, broken down by the run's own timestamps, beside the
// same command run directly with /bin/sh -c.
func BenchmarkRunTrue(b *testing.B) {
	c := startCore(b, coreBlock("")+job("noop", "true", `overlap = "allow"`))
	var sum struct{ record, dispatch, connect, start, exec, commit, total, wall time.Duration }
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		id := c.runNow("noop")
		r := c.waitFinal(id, 30*time.Second)
		sum.wall += time.Since(t0)
		m := r.Machines[0]
		if r.Status != "succeeded" {
			b.Fatalf("run %+v", r)
		}
		// started_at of the run is when the core recorded it; the
		// machine's timestamps follow the wrapper's life.
		sum.dispatch += m.DispatchedAt.Sub(r.StartedAt)
		sum.connect += m.ConnectedAt.Sub(m.DispatchedAt)
		sum.start += m.StartedAt.Sub(m.ConnectedAt)
		sum.exec += m.FinishedAt.Sub(m.StartedAt)
		sum.commit += r.FinishedAt.Sub(m.FinishedAt)
		sum.total += r.FinishedAt.Sub(r.StartedAt)
	}
	b.StopTimer()
	var direct time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := exec.Command("/bin/sh", "-c", "true").Run(); err != nil {
			b.Fatal(err)
		}
		direct += time.Since(t0)
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / n / 1000 }
	b.ReportMetric(ms(sum.dispatch), "ms/dispatch")
	b.ReportMetric(ms(sum.connect), "ms/connect")
	b.ReportMetric(ms(sum.start), "ms/start")
	b.ReportMetric(ms(sum.exec), "ms/exec+complete")
	b.ReportMetric(ms(sum.commit), "ms/commit")
	b.ReportMetric(ms(sum.total), "ms/total-stored")
	b.ReportMetric(ms(sum.wall), "ms/api-wall")
	b.ReportMetric(ms(direct), "ms/sh-direct")
	b.ReportMetric(float64(sum.total)/float64(direct), "x-of-direct")
}

// BenchmarkOutputThroughput pushes 256 MiB of one job's output through
// wrapper → core → store, for the default SQLite store plugin, the
// PostgreSQL one and the in-memory store (the path without a store's
// cost), each with the output cap raised above the payload, and reports
// each beside `cat` of the same bytes into /dev/null measured in the same
// run (the baseline) and `dd` of them into a new file (the cost
// of keeping them at all, which cat does not pay), with the CPU time the
// core and the store plugin (the PostgreSQL server aside) spent a MiB.
func BenchmarkOutputThroughput(b *testing.B) {
	const size = 256 << 20
	src := filepath.Join(b.TempDir(), "payload")
	writePayload(b, src, size)
	// Every store caps what one machine may store; the cap must not cut
	// the payload short.
	const capAttr = "  max_output_per_machine = \"1GiB\"\n"
	for _, st := range []struct {
		name  string
		block func(b *testing.B) string
	}{
		// The explicit block only raises the cap: its path defaults to
		// the data directory, as with no block.
		{"sqlite", func(*testing.B) string { return "store \"sqlite\" {\n" + capAttr + "}\n" }},
		{"postgres", func(b *testing.B) string { return postgresStore(b, capAttr) }},
		{"memory", func(*testing.B) string { return "store \"memory\" {\n" + capAttr + "}\n" }},
	} {
		b.Run(st.name, func(b *testing.B) {
			c := startCore(b, coreBlock("")+st.block(b)+job("spew", "cat "+src, `overlap = "allow"`))
			corePID, storePID := c.cmd.Process.Pid, 0
			if st.name != "memory" { // the in-memory store is the core's own
				storePID = pluginOf(b, corePID, "store")
			}
			copyTo := filepath.Join(b.TempDir(), "copy")
			var through, direct, toFile, coreCPU, storeCPU time.Duration
			var machineBusy int64 // ticks
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				busy0, _ := machineCPU(b)
				core0 := procCPU(b, corePID)
				var store0 time.Duration
				if storePID != 0 {
					store0 = procCPU(b, storePID)
				}
				id := c.runNow("spew")
				r := c.waitFinal(id, 10*time.Minute)
				through += time.Since(t0)
				busy1, _ := machineCPU(b)
				machineBusy += busy1 - busy0
				coreCPU += procCPU(b, corePID) - core0
				if storePID != 0 {
					storeCPU += procCPU(b, storePID) - store0
				}
				if r.Status != "succeeded" || r.Machines[0].OutputBytes != size {
					b.Fatalf("run %s stored %d bytes, want %d", r.Status, r.Machines[0].OutputBytes, size)
				}
				c.outputMatchesFile(id, hostname(b), "stdout", src)
				t1 := time.Now()
				cmd := exec.Command("cat", src)
				devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
				if err != nil {
					b.Fatal(err)
				}
				cmd.Stdout = devnull
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
				devnull.Close()
				direct += time.Since(t1)
				// The other baseline: the payload written to a new file
				// beside the store's, by dd, as the store's own file
				// writes are: what keeping the bytes costs on this
				// machine's page cache and file system, whoever writes.
				t2 := time.Now()
				if out, err := exec.Command("dd", "if="+src, "of="+copyTo, "bs=64K").CombinedOutput(); err != nil {
					b.Fatalf("dd: %v: %s", err, out)
				}
				toFile += time.Since(t2)
				if err := os.Remove(copyTo); err != nil {
					b.Fatal(err)
				}
			}
			mb := float64(size) / (1 << 20) * float64(b.N)
			b.ReportMetric(mb/through.Seconds(), "MiB/s-stored")
			b.ReportMetric(mb/direct.Seconds(), "MiB/s-cat")
			b.ReportMetric(direct.Seconds()/through.Seconds(), "fraction-of-cat")
			b.ReportMetric(mb/toFile.Seconds(), "MiB/s-dd-to-file")
			b.ReportMetric(toFile.Seconds()/through.Seconds(), "fraction-of-dd-to-file")
			// CPU a MiB, steadier than the rate on a shared machine.
			b.ReportMetric(msf(coreCPU)/mb, "core-CPU-ms/MiB")
			if storePID != 0 {
				b.ReportMetric(msf(storeCPU)/mb, "store-CPU-ms/MiB")
			}
			// Every process's CPU while the output went through: the
			// wrapper, the job and the plugins besides core and store.
			// At that cost, the machine's CPUs all busy would carry
			// MiB/s-CPU-bound.
			machineMS := msf(time.Duration(machineBusy)*clockTick) / mb
			b.ReportMetric(machineMS, "machine-CPU-ms/MiB")
			b.ReportMetric(cpuBound(machineMS), "MiB/s-CPU-bound")
		})
	}
}

// writePayload writes size bytes of lowercase letters, a newline every
// 100th byte, to path, a MiB at a time so that the payload is never
// whole in memory.
func writePayload(b testing.TB, path string, size int) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for off := 0; off < size; off += len(buf) {
		chunk := buf[:min(len(buf), size-off)]
		for j := range chunk {
			i := off + j
			chunk[j] = byte('a' + i%26)
			if i%100 == 99 {
				chunk[j] = '\n'
			}
		}
		if _, err := f.Write(chunk); err != nil {
			b.Fatalf("write payload: %v", err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatalf("write payload: %v", err)
	}
}
