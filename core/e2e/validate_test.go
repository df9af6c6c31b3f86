package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidatePointsAtTheLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := `core {
  listen = "127.0.0.1:8080"
}

job "a" {
  schedule = "61 * * * *"
  command  = "true"
  target "local" {}
}

job "b" {
  schedule = "@hourly"
  command  = "true"
  timeout  = "5 minutes"
  target "local" {}
}
`
	path := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "saltpeter"), "validate", "-config", path).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("validate exit %v, want 1; output:\n%s", err, out)
	}
	for _, want := range []string{"bad.hcl:6:14: error: Invalid schedule", "bad.hcl:14:14: error: Invalid duration"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output does not point at %s:\n%s", want, out)
		}
	}

	good := filepath.Join(dir, "good.hcl")
	if err := os.WriteFile(good, []byte(coreBlock("")+job("x", "true", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(binDir, "saltpeter"), "validate", "-config", good).CombinedOutput(); err != nil {
		t.Fatalf("a good configuration fails validation: %v\n%s", err, out)
	}
}

// TestServeRefusesAnOpenAPIOnTheNetwork: without api_tokens the core
// serves on loopback only, and says why it will not start otherwise.
func TestServeRefusesAnOpenAPIOnTheNetwork(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "open.hcl")
	conf := "core {\n  listen = \"0.0.0.0:0\"\n}\n" + job("x", "true", "")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "saltpeter"), "serve", "-config", path).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("serve on 0.0.0.0 without tokens: exit %v, want 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "api_tokens") {
		t.Fatalf("the refusal does not say what to do:\n%s", out)
	}
}

// TestReloadKeepsTheRunningConfigurationWhenTheNewOneIsBad edits the
// configuration under a running core: a bad edit is refused with its
// diagnostics and changes nothing, a good one takes effect.
func TestReloadKeepsTheRunningConfigurationWhenTheNewOneIsBad(t *testing.T) {
	t.Parallel()
	base := coreBlock("") + job("one", "true", "")
	c := startCore(t, base)
	path := filepath.Join(c.dir, "config.hcl")
	jobs := func() []string {
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
		return names
	}

	if err := os.WriteFile(path, []byte(base+job("two", "true", `timeout = "soon"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	var bad struct {
		Code        string `json:"code"`
		Diagnostics string `json:"diagnostics"`
	}
	if st := c.call(http.MethodPost, "/api/v1/reload", nil, &bad); st != http.StatusBadRequest || bad.Code != "CONFIG_INVALID" ||
		!strings.Contains(bad.Diagnostics, "config.hcl:") || !strings.Contains(bad.Diagnostics, "soon") {
		t.Fatalf("bad reload: status %d %+v", st, bad)
	}
	if got := jobs(); strings.Join(got, ",") != "one" {
		t.Fatalf("jobs after a refused reload: %v", got)
	}

	if err := os.WriteFile(path, []byte(base+job("two", "true", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if st := c.call(http.MethodPost, "/api/v1/reload", nil, nil); st != http.StatusOK {
		t.Fatalf("good reload: status %d", st)
	}
	if got := jobs(); strings.Join(got, ",") != "one,two" {
		t.Fatalf("jobs after reload: %v", got)
	}
	id := c.runNow("two")
	if r := c.waitFinal(id, 30*time.Second); r.Status != "succeeded" {
		t.Fatalf("the reloaded job's run: %+v", r)
	}
}

// TestServeRefusesACorruptStore: a database file that is not one stops
// the core at start with the file named, and the file is left as it was.
func TestServeRefusesACorruptStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(path, []byte(coreBlock("")+job("x", "true", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "data", "saltpeter.db")
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		t.Fatal(err)
	}
	garbage := []byte(strings.Repeat("not a database, but someone's precious bytes\n", 200))
	if err := os.WriteFile(db, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "saltpeter"), "serve", "-config", path)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("serve on a corrupt store: exit %v, want 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), db) {
		t.Fatalf("the refusal does not name %s:\n%s", db, out)
	}
	if after, err := os.ReadFile(db); err != nil || string(after) != string(garbage) {
		t.Fatalf("the corrupt file was changed (%v)", err)
	}
}

// TestValidateChecksTargetBlocks: a built-in target's block is checked by
// the plugin's own code at validate time, without starting anything, and
// the mistake points at the block.
func TestValidateChecksTargetBlocks(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "targets.hcl")
	hcl := coreBlock("") + `
job "a" {
  schedule = "@hourly"
  command  = "true"
  target "local" {
    hosts = ["web1"]
  }
}
`
	if err := os.WriteFile(path, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "saltpeter"), "validate", "-config", path).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("validate exit %v, want 1; output:\n%s", err, out)
	}
	line := strings.Count(hcl[:strings.Index(hcl, `target "local"`)], "\n") + 1
	want := fmt.Sprintf("targets.hcl:%d:", line)
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "Invalid target block") ||
		!strings.Contains(string(out), "hosts") {
		t.Errorf("validate output does not point at the target block (%s) and name the setting:\n%s", want, out)
	}
}

// TestLoadChecksThirdPartyTargetBlocks: a third party's target block,
// which validate cannot check without running the plugin, is checked by
// the running plugin at every load: a bad one is refused at reload with
// a diagnostic at the block, and the running configuration stays. So is
// a reload that moves the store.
func TestLoadChecksThirdPartyTargetBlocks(t *testing.T) {
	t.Parallel()
	simJob := func(name, block string) string {
		return fmt.Sprintf(`
job %q {
  schedule = "@manually"
  command  = "true"
  target "simfleet" {
    %s
  }
}
`, name, block)
	}
	base := coreBlock("") + fmt.Sprintf(`
plugin "target" "simfleet" {
  path = %q
  config {
    wrapper = %q
  }
}
`, filepath.Join(binDir, "simfleet"), filepath.Join(binDir, "saltpeter-wrapper")) + simJob("one", `machines = ["sim1"]`)
	c := startCore(t, base)

	bad := base + simJob("two", `hosts = ["sim1"]`)
	if err := os.WriteFile(filepath.Join(c.dir, "config.hcl"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Code        string `json:"code"`
		Diagnostics string `json:"diagnostics"`
	}
	line := strings.Count(bad[:strings.LastIndex(bad, `target "simfleet"`)], "\n") + 1
	st := c.call(http.MethodPost, "/api/v1/reload", nil, &resp)
	if st != http.StatusBadRequest || resp.Code != "CONFIG_INVALID" ||
		!strings.Contains(resp.Diagnostics, fmt.Sprintf("config.hcl:%d:", line)) || !strings.Contains(resp.Diagnostics, `job "two"`) ||
		!strings.Contains(resp.Diagnostics, "hosts") {
		t.Fatalf("reload with a bad simfleet block: status %d %+v, want CONFIG_INVALID at config.hcl:%d naming job two and hosts", st, resp, line)
	}
	if st := c.call(http.MethodGet, "/api/v1/jobs/two", nil, nil); st != http.StatusNotFound {
		t.Fatalf("job two after a refused reload: status %d, want 404", st)
	}

	// A store cannot change under a running core: said, not ignored.
	moved := base + "\nstore \"sqlite\" {\n  path = \"elsewhere.db\"\n}\n"
	if err := os.WriteFile(filepath.Join(c.dir, "config.hcl"), []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	resp.Code, resp.Diagnostics = "", ""
	if st := c.call(http.MethodPost, "/api/v1/reload", nil, &resp); st != http.StatusBadRequest || resp.Code != "CONFIG_INVALID" ||
		!strings.Contains(resp.Diagnostics, "Store changed") {
		t.Fatalf("reload with another store: status %d %+v, want CONFIG_INVALID saying the store changed", st, resp)
	}
	id := c.runNow("one")
	if r := c.waitFinal(id, 30*time.Second); r.Status != "succeeded" {
		t.Fatalf("run of the running configuration's job: %s", r.Status)
	}
}
