package hub

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// records decodes the JSON lines hclog wrote.
func records(t *testing.T, out *bytes.Buffer) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

func TestConnLogFields(t *testing.T) {
	var out bytes.Buffer
	base := hclog.New(&hclog.LoggerOptions{Output: &out, JSONFormat: true, Level: hclog.Info})
	l := newConnLog(base, "127.0.0.2:4711")

	l.Debug("not written at info")
	l.Warn("before the bind", "k", 1)
	named := l.naming("run-1", "web1")
	named.Error("about the frame's run")
	l.bound("run-1", "web1")
	l.Info("after the bind", "k", 2)

	recs := records(t, &out)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3 (the debug one dropped):\n%s", len(recs), out.String())
	}
	for i, tc := range []struct {
		msg          string
		level        string
		run, machine any // nil: absent
		k            any
	}{
		{"before the bind", "warn", nil, nil, 1.0},
		{"about the frame's run", "error", "run-1", "web1", nil},
		{"after the bind", "info", "run-1", "web1", 2.0},
	} {
		rec := recs[i]
		if rec["@message"] != tc.msg || rec["@level"] != tc.level {
			t.Errorf("record %d: %v %q, want %s %q", i, rec["@level"], rec["@message"], tc.level, tc.msg)
		}
		if rec["remote_addr"] != "127.0.0.2:4711" {
			t.Errorf("record %d: remote_addr %v", i, rec["remote_addr"])
		}
		if rec["run_id"] != tc.run || rec["machine"] != tc.machine || rec["k"] != tc.k {
			t.Errorf("record %d: run_id %v machine %v k %v, want %v %v %v",
				i, rec["run_id"], rec["machine"], rec["k"], tc.run, tc.machine, tc.k)
		}
	}
}

// The bind names the run while the connection's other goroutines (its
// writer, the bind timer) may be logging: go test -race.
func TestConnLogBoundWhileLogging(t *testing.T) {
	var out bytes.Buffer // hclog serializes its writes
	base := hclog.New(&hclog.LoggerOptions{Output: &out, JSONFormat: true})
	l := newConnLog(base, "127.0.0.2:4711")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 100 {
			l.Warn("from another goroutine")
		}
	}()
	l.bound("run-1", "web1")
	wg.Wait()
	recs := records(t, &out)
	if len(recs) != 100 {
		t.Fatalf("%d records, want 100", len(recs))
	}
	for _, rec := range recs {
		if rec["run_id"] != nil && (rec["run_id"] != "run-1" || rec["machine"] != "web1") {
			t.Fatalf("a record with half the fields: %v", rec)
		}
	}
}
