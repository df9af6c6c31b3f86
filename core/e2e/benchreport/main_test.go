package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	in := `goos: linux
BenchmarkDecode/heartbeat-2         	  233253	      5592 ns/op	  28.44 MB/s	     744 B/op	      10 allocs/op
BenchmarkKillLatency-2   	      20	  12.5 ms/kill-to-stored	  14.1 ms/kill-wall
--- FAIL: BenchmarkBroken-2
BenchmarkOdd-2 1 3 units extra
PASS
`
	got, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("parsed %d results, want 2: %+v", len(got), got)
	}
	if r := got[0]; r.Name != "BenchmarkDecode/heartbeat" || r.N != 233253 || r.Metrics["allocs/op"] != 10 || len(r.Units) != 4 {
		t.Errorf("first = %+v", r)
	}
	if r := got[1]; r.Name != "BenchmarkKillLatency" || r.Metrics["ms/kill-to-stored"] != 12.5 || r.Units[1] != "ms/kill-wall" {
		t.Errorf("second = %+v", r)
	}
}

func TestVerdict(t *testing.T) {
	tests := []struct {
		f    figure
		v    float64
		want string
	}{
		{figure{Max: 20}, 12.5, "met"},
		{figure{Max: 20}, 20, "met"},
		{figure{Max: 20}, 21, "**missed**"},
		{figure{Min: 0.1}, 0.35, "met"},
		{figure{Min: 0.1}, 0.05, "**missed**"},
		{figure{}, 3, ""},
	}
	for _, tt := range tests {
		if got := verdict(tt.f, tt.v); got != tt.want {
			t.Errorf("verdict(%+v, %v) = %q, want %q", tt.f, tt.v, got, tt.want)
		}
	}
}

// The report shows a measured figure with its verdict and the metrics
// beside it, names the ones not measured, and says which runs failed.
func TestReport(t *testing.T) {
	results := []result{{Name: "BenchmarkKillLatency", N: 20, Metrics: map[string]float64{"ms/kill-to-stored": 31, "ms/kill-wall": 33},
		Units: []string{"ms/kill-to-stored", "ms/kill-wall"}, Command: "go test -bench KillLatency ./core/e2e/"}}
	ran := []ranStep{{Command: "go test -bench Broken ./x/", Err: errTest("exit status 1")}}
	var b bytes.Buffer
	report(&b, machineInfo{Cores: 2, CPU: "cpu", Memory: "1 GiB", Kernel: "Linux", Go: "go1"}, time.Now(), ran, results)
	doc := b.String()
	for _, want := range []string{
		"| kill latency, real local wrapper honouring SIGTERM | 31.0 ms/kill-to-stored | p99 < 20 ms | **missed** | 33.0 ms/kill-wall |",
		"not measured yet (`BenchmarkRunTrue`)",
		"`go test -bench KillLatency ./core/e2e/`",
		"**Failed** after 0s: `go test -bench Broken ./x/`: exit status 1",
		"## Findings",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q:\n%s", want, doc)
		}
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

func TestMedians(t *testing.T) {
	run := func(cmd string, ms map[string]float64, units ...string) result {
		return result{Name: "BenchmarkX", N: 1, Metrics: ms, Units: units, Command: cmd}
	}
	tests := []struct {
		name    string
		in      []result
		want    map[string]float64
		lo, hi  map[string]float64
		runs    int
		results int
	}{
		{name: "one run stands alone",
			in:   []result{run("c", map[string]float64{"ms": 5}, "ms")},
			want: map[string]float64{"ms": 5}, runs: 1, results: 1},
		{name: "odd runs: the middle one",
			in: []result{run("c", map[string]float64{"ms": 9, "x": 1}, "ms", "x"), run("c", map[string]float64{"ms": 3, "x": 2}, "ms", "x"),
				run("c", map[string]float64{"ms": 5, "x": 7}, "ms", "x")},
			want: map[string]float64{"ms": 5, "x": 2}, lo: map[string]float64{"ms": 3, "x": 1}, hi: map[string]float64{"ms": 9, "x": 7},
			runs: 3, results: 1},
		{name: "even runs: the mean of the middle two, a metric one run lacks among the rest",
			in: []result{run("c", map[string]float64{"ms": 1, "x": 4}, "ms", "x"), run("c", map[string]float64{"ms": 2}, "ms"),
				run("c", map[string]float64{"ms": 4, "x": 6}, "ms", "x"), run("c", map[string]float64{"ms": 8, "x": 5}, "ms", "x")},
			want: map[string]float64{"ms": 3, "x": 5}, lo: map[string]float64{"ms": 1, "x": 4}, hi: map[string]float64{"ms": 8, "x": 6},
			runs: 4, results: 1},
		{name: "another command's run of the same benchmark is another result",
			in:   []result{run("c", map[string]float64{"ms": 1}, "ms"), run("d", map[string]float64{"ms": 2}, "ms")},
			want: map[string]float64{"ms": 1}, runs: 1, results: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := medians(tt.in)
			if len(got) != tt.results {
				t.Fatalf("%d results, want %d: %+v", len(got), tt.results, got)
			}
			r := got[0]
			if r.Runs != tt.runs || r.Name != "BenchmarkX" || r.Command != "c" {
				t.Errorf("result %+v, want %d runs of BenchmarkX by c", r, tt.runs)
			}
			for u, v := range tt.want {
				if r.Metrics[u] != v {
					t.Errorf("%s = %v, want %v", u, r.Metrics[u], v)
				}
			}
			for u, v := range tt.lo {
				if r.Lo[u] != v || r.Hi[u] != tt.hi[u] {
					t.Errorf("%s spans %v to %v, want %v to %v", u, r.Lo[u], r.Hi[u], v, tt.hi[u])
				}
			}
		})
	}
}

// A figure of a benchmark run several times is the median, with the
// range beside it, and every run is still listed.
func TestReportMedian(t *testing.T) {
	var results []result
	for _, v := range []float64{0.05, 0.07, 0.06} {
		results = append(results, result{Name: "BenchmarkOutputThroughput/sqlite", N: 1,
			Metrics: map[string]float64{"fraction-of-cat": v, "MiB/s-stored": v * 10000}, Units: []string{"fraction-of-cat", "MiB/s-stored"},
			Command: "go test -count 3 ./core/e2e/"})
	}
	var b bytes.Buffer
	report(&b, machineInfo{Cores: 2}, time.Now(), nil, results)
	doc := b.String()
	for _, want := range []string{
		"| 0.06 fraction-of-cat (median of 3 runs: 0.05 to 0.07) | ≥ 10% of cat to /dev/null, byte-exact | **missed** | 600 MiB/s-stored |",
		"- BenchmarkOutputThroughput/sqlite (1×): 0.05 fraction-of-cat, 500 MiB/s-stored",
		"- BenchmarkOutputThroughput/sqlite (1×): 0.07 fraction-of-cat, 700 MiB/s-stored",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q:\n%s", want, doc)
		}
	}
}
