package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// TestOutputCapKeepsHeadAndTail: a job prints 1,200,000 bytes under a cap
// of 256 KiB. The run succeeds, the API counts every byte and the dropped
// ones, and the stored output is the job's first bytes, one marker
// saying how many were dropped, and its last bytes, which add up to the
// whole: a head of at least half the cap, a tail of at least the cap
// less the head, and no more than the cap and one chunk kept.
func TestOutputCapKeepsHeadAndTail(t *testing.T) {
	t.Parallel()
	const (
		lines    = 100000 // "line 000001\n" … "line 100000\n", 12 bytes each
		capBytes = 256 << 10
		chunkMax = wire.MaxOutputChunk
	)
	c := startCore(t, coreBlock("")+`store "sqlite" {
  max_output_per_machine = "256KiB"
}
`+job("spew", fmt.Sprintf("seq -f 'line %%06g' 1 %d", lines), ""))
	host := hostname(t)
	id := c.runNow("spew")
	r := c.waitFinal(id, 60*time.Second)
	if r.Status != "succeeded" {
		t.Fatalf("run %+v", r)
	}
	var full strings.Builder
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&full, "line %06d\n", i)
	}
	want := full.String()

	var detail struct {
		Machines []struct {
			OutputBytes   int64 `json:"output_bytes"`
			OutputDropped int64 `json:"output_dropped_bytes"`
		} `json:"machines"`
	}
	if st := c.call(http.MethodGet, "/api/v1/runs/"+id, nil, &detail); st != http.StatusOK || len(detail.Machines) != 1 {
		t.Fatalf("get run: status %d, %+v", st, detail)
	}
	m := detail.Machines[0]
	if m.OutputBytes != int64(len(want)) || m.OutputDropped <= 0 || m.OutputBytes-m.OutputDropped > capBytes+chunkMax {
		t.Fatalf("output_bytes %d, output_dropped_bytes %d; want %d in all, some dropped, at most %d kept",
			m.OutputBytes, m.OutputDropped, len(want), capBytes+chunkMax)
	}

	got := c.output(id, host, "")
	markers := regexp.MustCompile(`\n\[saltpeter: (\d+) bytes of output dropped here by max_output_per_machine\]\n`)
	found := markers.FindAllStringSubmatchIndex(got, -1)
	if len(found) != 1 {
		t.Fatalf("stored output has %d markers, want 1 (%d bytes)", len(found), len(got))
	}
	loc := found[0]
	head, tail := got[:loc[0]], got[loc[1]:]
	dropped, _ := strconv.Atoi(got[loc[2]:loc[3]])
	if !strings.HasPrefix(want, head) || !strings.HasSuffix(want, tail) {
		t.Fatalf("the kept head (%d bytes) or tail (%d bytes) is not the job's own", len(head), len(tail))
	}
	if len(head)+dropped+len(tail) != len(want) || int64(dropped) != m.OutputDropped {
		t.Fatalf("head %d + dropped %d + tail %d != %d (API says %d dropped)", len(head), dropped, len(tail), len(want), m.OutputDropped)
	}
	if len(head) < capBytes/2 || len(tail) < capBytes-len(head) {
		t.Errorf("kept a head of %d and a tail of %d bytes of a %d cap; want a head of half the cap and a tail of the rest",
			len(head), len(tail), capBytes)
	}
}
