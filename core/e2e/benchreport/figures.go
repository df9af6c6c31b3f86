package main

import "time"

// step is one `go test` run of benchmarks, bounded by Timeout.
type step struct {
	Pkg       string
	Bench     string // -bench regexp
	BenchTime string // -benchtime
	Timeout   time.Duration
}

// steps are the benchmark runs, in order; a figure names the benchmark
// and metric it takes from them.
var steps = []step{
	{Pkg: "./sdk/wire/", Bench: ".", BenchTime: "1s", Timeout: 5 * time.Minute},
	{Pkg: "./core/hub/", Bench: ".", BenchTime: "1s", Timeout: 5 * time.Minute},
	{Pkg: "./plugins/sqlite/", Bench: ".", BenchTime: "2s", Timeout: 10 * time.Minute},
	{Pkg: "./wrapper/proc/", Bench: ".", BenchTime: "20x", Timeout: 10 * time.Minute},
	{Pkg: "./core/e2e/", Bench: "KillLatency|RunTrue", BenchTime: "20x", Timeout: 10 * time.Minute},
	{Pkg: "./core/e2e/", Bench: "OutputThroughput", BenchTime: "1x", Timeout: 60 * time.Minute},
	{Pkg: "./core/e2e/", Bench: "ScheduledRuns|CoreRSSWithStoredRuns", BenchTime: "1x", Timeout: 30 * time.Minute},
	{Pkg: "./core/e2e/", Bench: "SSHDispatch200", BenchTime: "1x", Timeout: 30 * time.Minute},
}

// figure is one line of the report's table: a metric of a benchmark held
// to a target.
type figure struct {
	What   string // the figure, as the issue names it
	Target string // in words
	Bench  string // the benchmark's name as printed, without the -N suffix
	Metric string // the unit it reports the figure in
	// Max or Min is the target as a bound on the metric (0: none, the
	// figure is reported only).
	Max, Min float64
	// Beside are other metrics of the same benchmark shown with it
	// (breakdowns, baselines, CPU per run).
	Beside []string
}

var figures = []figure{
	{What: "jobs firing every second, real local wrappers", Target: "500 jobs, none missed or doubled, fire → start p99 < 250 ms",
		Bench: "BenchmarkScheduledRuns", Metric: "lag-p99-ms", Max: 250,
		Beside: []string{"runs/s", "fraction-of-demand", "unfired/s", "core-CPU-ms/run", "store-CPU-ms/run", "target-CPU-ms/run"}},
	{What: "jobs firing every second, sim target", Target: "5,000 jobs, none missed or doubled, fire → start p99 < 200 ms",
		Bench: "BenchmarkSimScheduledRuns", Metric: "fire-to-start-p99-ms", Max: 200},
	{What: "idle wrapper connections, ws", Target: "50,000, heartbeats every 5 s: core RSS < 1 GiB, < 25% of a core",
		Bench: "BenchmarkIdleConnections/ws", Metric: "core-RSS-MiB", Max: 1024, Beside: []string{"core-CPU-%"}},
	{What: "idle wrapper connections, wss", Target: "10,000: core RSS < 1 GiB, < 25% of a core",
		Bench: "BenchmarkIdleConnections/wss", Metric: "core-RSS-MiB", Max: 1024, Beside: []string{"core-CPU-%"}},
	{What: "fire precision, one job every second", Target: "p99 < 10 ms after the second boundary",
		Bench: "BenchmarkFirePrecision", Metric: "p99-ms", Max: 10},
	{What: "kill latency, 1,000 runs in flight (sim)", Target: "API request → complete stored, p99 < 50 ms",
		Bench: "BenchmarkSimKillLatency", Metric: "p99-ms", Max: 50},
	{What: "kill latency, real local wrapper honouring SIGTERM", Target: "p99 < 20 ms",
		Bench: "BenchmarkKillLatency", Metric: "ms/kill-to-stored", Max: 20, Beside: []string{"ms/kill-wall"}},
	{What: "one job's output into SQLite, all kept", Target: "≥ 10% of cat to /dev/null, byte-exact",
		Bench: "BenchmarkOutputThroughput/sqlite", Metric: "fraction-of-cat", Min: 0.10, Beside: []string{"MiB/s-stored", "MiB/s-cat"}},
	{What: "10,000 job definitions, idle", Target: "core RSS < 150 MB, start < 2 s",
		Bench: "BenchmarkManyJobs", Metric: "core-RSS-MiB", Max: 150, Beside: []string{"start-s"}},
	{What: "run now → final stored, `true`, local target", Target: "p50 < 10 ms, with its breakdown beside /bin/sh -c true",
		Bench: "BenchmarkRunTrue", Metric: "ms/total-stored", Max: 10,
		Beside: []string{"ms/dispatch", "ms/connect", "ms/start", "ms/exec+complete", "ms/commit", "ms/sh-direct", "x-of-direct"}},
}
