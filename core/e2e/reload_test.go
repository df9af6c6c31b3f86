package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReloadWhileARunGoesOn: a reload adds, changes and removes jobs while
// a run of a changed job goes on. The run finishes with the spec it
// started with; the changed job's next run has the new one; the removed
// job's runs stay in the history; the added job runs. A reload with a
// mistake is refused with its diagnostics, and the jobs stay as they were.
func TestReloadWhileARunGoesOn(t *testing.T) {
	t.Parallel()
	gate := filepath.Join(t.TempDir(), "gate")
	long := func(word string) string {
		return fmt.Sprintf(`echo "start %s"; while [ ! -e %s ]; do sleep 0.05; done; echo "end %s"`, word, gate, word)
	}
	before := coreBlock("") + job("long", long("old"), "") + job("gone", "echo bye", "") + job("changed", "echo v1", "")
	c := startCore(t, before)
	path := filepath.Join(c.dir, "config.hcl")
	jobs := func() []string {
		t.Helper()
		var resp struct {
			Jobs []struct {
				Name string `json:"name"`
			} `json:"jobs"`
		}
		if st := c.call(http.MethodGet, "/api/v1/jobs", nil, &resp); st != http.StatusOK {
			t.Fatalf("list jobs: %d", st)
		}
		var names []string
		for _, j := range resp.Jobs {
			names = append(names, j.Name)
		}
		slices.Sort(names)
		return names
	}

	goneRun := c.runNow("gone")
	c.waitFinal(goneRun, 30*time.Second)
	longRun := c.runNow("long")
	c.followUntil(longRun, hostname(t), "start old")

	after := coreBlock("") + job("long", long("new"), "") + job("changed", "echo v2", "") + job("added", "echo hello", "")
	if err := os.WriteFile(path, []byte(after), 0o644); err != nil {
		t.Fatal(err)
	}
	if st := c.call(http.MethodPost, "/api/v1/reload", nil, nil); st != http.StatusOK {
		t.Fatalf("reload: %d", st)
	}
	if got := jobs(); !slices.Equal(got, []string{"added", "changed", "long"}) {
		t.Fatalf("jobs after the reload: %v", got)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := c.waitFinal(longRun, 30*time.Second); r.Status != "succeeded" {
		t.Fatalf("the run going on during the reload: %s", r.Status)
	}
	if out := c.output(longRun, hostname(t), "stdout"); out != "start old\nend old\n" {
		t.Fatalf("the run going on during the reload printed %q, want its own spec's output", out)
	}
	if st := c.call(http.MethodGet, "/api/v1/runs/"+goneRun, nil, nil); st != http.StatusOK {
		t.Fatalf("the removed job's run: %d, want it kept", st)
	}
	for name, want := range map[string]string{"changed": "v2\n", "added": "hello\n"} {
		id := c.runNow(name)
		if r := c.waitFinal(id, 30*time.Second); r.Status != "succeeded" {
			t.Fatalf("%s after the reload: %s", name, r.Status)
		}
		if out := c.output(id, hostname(t), "stdout"); out != want {
			t.Errorf("%s printed %q, want %q", name, out, want)
		}
	}

	if err := os.WriteFile(path, []byte(after+job("broken", "true", `timeout = "forever"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	var bad struct {
		Code        string `json:"code"`
		Diagnostics string `json:"diagnostics"`
	}
	if st := c.call(http.MethodPost, "/api/v1/reload", nil, &bad); st != http.StatusBadRequest || bad.Code != "CONFIG_INVALID" ||
		!strings.Contains(bad.Diagnostics, "forever") {
		t.Fatalf("a reload with a mistake: %d %+v", st, bad)
	}
	if got := jobs(); !slices.Equal(got, []string{"added", "changed", "long"}) {
		t.Fatalf("jobs after a refused reload: %v", got)
	}
}
