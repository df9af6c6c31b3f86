package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed findings.md
var findings string

func main() {
	out := flag.String("o", "BENCHMARKS.md", "the report to write")
	from := flag.String("from", "", "read benchmark output from this file instead of running the benchmarks")
	goBin := flag.String("go", "go", "the go command")
	flag.Parse()
	if err := run(*out, *from, *goBin); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(out, from, goBin string) error {
	var results []result
	var ran []ranStep
	started := time.Now()
	if from != "" {
		f, err := os.Open(from)
		if err != nil {
			return fmt.Errorf("read benchmark output: %w", err)
		}
		defer f.Close()
		rs, err := parse(f)
		if err != nil {
			return err
		}
		results = rs
	} else {
		for _, s := range steps {
			r, err := runStep(goBin, s)
			ran = append(ran, r)
			if err != nil {
				// One failed step must not hide the others' figures:
				// the report says which failed.
				fmt.Fprintf(os.Stderr, "benchreport: %s: %v\n", r.Command, err)
			}
			results = append(results, r.Results...)
		}
	}
	var doc bytes.Buffer
	report(&doc, machine(goBin), started, ran, results)
	if err := os.WriteFile(out, doc.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	for _, r := range ran {
		if r.Err != nil {
			return fmt.Errorf("%d of %d benchmark runs failed; %s says which", failed(ran), len(ran), out)
		}
	}
	return nil
}

func failed(ran []ranStep) int {
	n := 0
	for _, r := range ran {
		if r.Err != nil {
			n++
		}
	}
	return n
}

// ranStep is a step as it ran.
type ranStep struct {
	Command string
	Took    time.Duration
	Err     error
	Results []result
}

// runStep runs one step's benchmarks, echoing their output, and parses it.
func runStep(goBin string, s step) (ranStep, error) {
	args := []string{"test", "-run", "^$", "-bench", s.Bench, "-benchtime", s.BenchTime, "-count", strconv.Itoa(max(s.Count, 1)),
		"-timeout", s.Timeout.String(), s.Pkg}
	r := ranStep{Command: goBin + " " + strings.Join(quoteArgs(args), " ")}
	fmt.Fprintln(os.Stderr, "benchreport: running", r.Command)
	// The go test timeout panics the test binary; this one is for a go
	// command that hangs before it starts the binary.
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout+5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, args...)
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(os.Stdout, &buf)
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	err := cmd.Run()
	r.Took = time.Since(t0)
	rs, perr := parse(&buf)
	for i := range rs {
		rs[i].Command = r.Command
	}
	r.Results = rs
	if err == nil {
		err = perr
	}
	r.Err = err
	return r, err
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "|^$* ") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}

// result is one benchmark line: its name without the -N suffix and its
// metrics by unit; or, from medians, the runs of one benchmark.
type result struct {
	Name    string
	N       int
	Metrics map[string]float64
	Units   []string // in the order printed
	Command string
	// Runs is how many lines the result stands for; when more than one,
	// Metrics are their medians and Lo and Hi the range of each.
	Runs   int
	Lo, Hi map[string]float64
}

// medians gives one result per benchmark of a command: a benchmark run
// more than once (a step's Count) has each metric the median of its runs
// (the mean of the middle two for an even number), so that one figure
// may come from one run and the figure beside it from another. Order is
// that of each benchmark's first run.
func medians(results []result) []result {
	type key struct{ cmd, name string }
	var order []key
	runs := map[key][]result{}
	for _, r := range results {
		k := key{r.Command, r.Name}
		if _, ok := runs[k]; !ok {
			order = append(order, k)
		}
		runs[k] = append(runs[k], r)
	}
	out := make([]result, 0, len(order))
	for _, k := range order {
		rs := runs[k]
		if len(rs) == 1 {
			rs[0].Runs = 1
			out = append(out, rs[0])
			continue
		}
		m := result{Name: k.name, Command: k.cmd, N: rs[0].N, Runs: len(rs),
			Metrics: map[string]float64{}, Lo: map[string]float64{}, Hi: map[string]float64{}}
		for _, r := range rs {
			for _, u := range r.Units {
				if !slices.Contains(m.Units, u) {
					m.Units = append(m.Units, u)
				}
			}
		}
		for _, u := range m.Units {
			var vs []float64
			for _, r := range rs {
				if v, ok := r.Metrics[u]; ok {
					vs = append(vs, v)
				}
			}
			slices.Sort(vs)
			mid := len(vs) / 2
			if len(vs)%2 == 1 {
				m.Metrics[u] = vs[mid]
			} else {
				m.Metrics[u] = (vs[mid-1] + vs[mid]) / 2
			}
			m.Lo[u], m.Hi[u] = vs[0], vs[len(vs)-1]
		}
		out = append(out, m)
	}
	return out
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// parse reads `go test -bench` output: lines "BenchmarkX-2  N  v unit  v
// unit ...".
func parse(r io.Reader) ([]result, error) {
	var out []result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		res := result{Name: procSuffix.ReplaceAllString(f[0], ""), N: n, Metrics: map[string]float64{}}
		ok := true
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				ok = false
				break
			}
			res.Metrics[f[i+1]] = v
			res.Units = append(res.Units, f[i+1])
		}
		if ok {
			out = append(out, res)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read benchmark output: %w", err)
	}
	return out, nil
}

// machineInfo describes where the figures were measured.
type machineInfo struct {
	CPU, Memory, Kernel, Go string
	Cores                   int
}

func machine(goBin string) machineInfo {
	m := machineInfo{Cores: runtime.NumCPU(), CPU: "unknown", Memory: "unknown", Kernel: "unknown", Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if b, err := exec.Command(goBin, "env", "GOVERSION").Output(); err == nil {
		m.Go = strings.TrimSpace(string(b))
	}
	return m
}

// find returns the result of a benchmark by name.
func find(results []result, name string) (result, bool) {
	for _, r := range results {
		if r.Name == name {
			return r, true
		}
	}
	return result{}, false
}

// verdict holds a figure's value to its target.
func verdict(f figure, v float64) string {
	switch {
	case f.Max > 0 && v <= f.Max, f.Min > 0 && v >= f.Min:
		return "met"
	case f.Max > 0 || f.Min > 0:
		return "**missed**"
	}
	return ""
}

func num(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func report(w io.Writer, m machineInfo, started time.Time, ran []ranStep, results []result) {
	fmt.Fprintf(w, "# Benchmarks\n\nWritten by `make bench` (core/e2e/benchreport) on %s. Do not edit: run it again.\n\n",
		started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "## Machine\n\n- %d cores: %s\n- %s of memory\n- %s\n- %s\n\n", m.Cores, m.CPU, m.Memory, m.Kernel, m.Go)
	fmt.Fprint(w, `## Method

Every figure is measured end to end on this one machine, with real
processes over real sockets: a core built as `+"`make build`"+` builds it, its
plugins as the separate processes they are in production, the SQLite
store unless a figure says otherwise, and the features of a real
deployment on (durable acks, the notification outbox, jitter where a
job sets it). Where a baseline is measured in the same run (a raw `+"`cat`"+`,
`+"`/bin/sh -c true`"+`), the figure is given beside it and as a ratio. The
load generator and the benchmark share the machine with the core, so the
figures are conservative. A benchmark run more than once (its command
says `+"`-count`"+`) gives the median of its runs for each figure, and the
range of the runs beside the figure; every run is listed below.

`)
	fmt.Fprint(w, "## Figures\n\n| figure | measured | target | | also measured |\n|---|---|---|---|---|\n")
	summary := medians(results)
	for _, f := range figures {
		r, ok := find(summary, f.Bench)
		v, has := r.Metrics[f.Metric]
		if !ok || !has {
			fmt.Fprintf(w, "| %s | not measured yet (`%s`) | %s | | |\n", f.What, f.Bench, f.Target)
			continue
		}
		var beside []string
		for _, u := range f.Beside {
			if bv, ok := r.Metrics[u]; ok {
				beside = append(beside, num(bv)+" "+u)
			}
		}
		measured := num(v) + " " + f.Metric
		if r.Runs > 1 {
			measured += fmt.Sprintf(" (median of %d runs: %s to %s)", r.Runs, num(r.Lo[f.Metric]), num(r.Hi[f.Metric]))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", f.What, measured, f.Target, verdict(f, v), strings.Join(beside, ", "))
	}
	fmt.Fprint(w, "\n## Every benchmark\n\nAs `go test -bench` reported them, with the command that ran each.\n\n")
	var lastCmd string
	for _, r := range results {
		if r.Command != lastCmd {
			fmt.Fprintf(w, "\n`%s`\n\n", r.Command)
			lastCmd = r.Command
		}
		parts := make([]string, 0, len(r.Units))
		for _, u := range r.Units {
			parts = append(parts, num(r.Metrics[u])+" "+u)
		}
		fmt.Fprintf(w, "- %s (%d×): %s\n", r.Name, r.N, strings.Join(parts, ", "))
	}
	for _, s := range ran {
		if s.Err != nil {
			fmt.Fprintf(w, "\n**Failed** after %s: `%s`: %v\n", s.Took.Round(time.Second), s.Command, s.Err)
		}
	}
	fmt.Fprint(w, "\n"+strings.TrimSpace(findings)+"\n")
}
