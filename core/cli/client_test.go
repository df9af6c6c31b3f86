package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// nextAPI answers GET /api/v1/jobs/backup/next as the core does, and
// records the query of each request.
func nextAPI(t *testing.T) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/api/v1/jobs/backup/next" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"unknown job","code":"JOB_NOT_FOUND"}`)
			return
		}
		fmt.Fprint(w, `{"job":"backup","timezone":"America/New_York","fires":[`+
			`{"at":"2026-03-08T06:30:00Z","at_local":"2026-03-08T01:30:00-05:00","dst_transition":false},`+
			`{"at":"2026-03-08T07:00:00Z","at_local":"2026-03-08T03:00:00-04:00","dst_transition":true,"dst":"shifted"},`+
			`{"at":"2026-11-01T06:30:00Z","at_local":"2026-11-01T01:30:00-05:00","dst_transition":true,"dst":"second_pass"},`+
			`{"at":"2026-11-02T06:30:00Z","at_local":"2026-11-02T01:30:00-05:00","dst_transition":true,"dst":"transition"}]}`)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), queries...)
	}
}

func TestNext(t *testing.T) {
	srv, queries := nextAPI(t)
	t.Setenv("SALTPETER_TOKEN", "")
	wantRows := [][]string{
		{"LOCAL", "(America/New_York)", "UTC", "DST"},
		{"2026-03-08T01:30:00-05:00", "2026-03-08T06:30:00Z"},
		{"2026-03-08T03:00:00-04:00", "2026-03-08T07:00:00Z", "shifted:"},
		{"2026-11-01T01:30:00-05:00", "2026-11-01T06:30:00Z", "second", "pass:"},
		{"2026-11-02T01:30:00-05:00", "2026-11-02T06:30:00Z", "offset", "changed"},
	}
	tests := []struct {
		name      string
		args      []string
		code      int
		query     string // sent, when the command gets that far
		stderr    string
		wantTable bool
	}{
		{name: "flags after the job", args: []string{"-addr", srv.URL, "backup", "-count", "4"}, query: "count=4", wantTable: true},
		{name: "flags before the job", args: []string{"-count", "4", "-addr", srv.URL, "backup"}, query: "count=4", wantTable: true},
		{name: "default count", args: []string{"-addr", srv.URL, "backup"}, query: "count=5", wantTable: true},
		{name: "no job", args: []string{"-addr", srv.URL}, code: 2, stderr: "want one job name"},
		{name: "two jobs", args: []string{"-addr", srv.URL, "backup", "other"}, code: 2, stderr: "want one job name"},
		{name: "count zero", args: []string{"-addr", srv.URL, "backup", "-count", "0"}, code: 2, stderr: "want 1 or more"},
		{name: "unknown job", args: []string{"-addr", srv.URL, "nope"}, code: 1, query: "count=5", stderr: "unknown job (JOB_NOT_FOUND, HTTP 404)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(queries())
			var out, errb bytes.Buffer
			if code := Main(append([]string{"next"}, tt.args...), &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, errb.String())
			}
			if !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stderr %q, want it to contain %q", errb.String(), tt.stderr)
			}
			sent := queries()[before:]
			if tt.query == "" && len(sent) != 0 || tt.query != "" && (len(sent) != 1 || sent[0] != tt.query) {
				t.Errorf("queries sent %q, want %q", sent, tt.query)
			}
			if !tt.wantTable {
				return
			}
			lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			if len(lines) != len(wantRows) {
				t.Fatalf("printed %d lines, want %d:\n%s", len(lines), len(wantRows), out.String())
			}
			for i, want := range wantRows {
				got := strings.Fields(lines[i])
				if len(got) < len(want) || strings.Join(got[:len(want)], " ") != strings.Join(want, " ") {
					t.Errorf("line %d = %q, want it to start with %q", i, lines[i], strings.Join(want, " "))
				}
			}
		})
	}
}
