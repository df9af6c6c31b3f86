package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
