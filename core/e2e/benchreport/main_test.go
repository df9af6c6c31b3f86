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
