package notifier_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates proto/notifier.proto with protoc
// and the generator versions pinned in proto.mk, as `make proto` does, and
// fails when the checked-in code under internal/notifierpb differs. (The
// same test in sdk/target checks every .proto under sdk/; this one keeps
// the kind's own check beside it.) It skips when the tools are missing,
// unless SALTPETER_REQUIRE=all.
func TestGeneratedCodeIsFresh(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile(filepath.Join(root, "proto.mk"))
	if err != nil {
		t.Fatalf("read proto.mk: %v", err)
	}
	goVersion := makeVar(t, mk, "PROTOC_GEN_GO_VERSION")
	grpcVersion := makeVar(t, mk, "PROTOC_GEN_GO_GRPC_VERSION")

	protoc, err := exec.LookPath("protoc")
	if err != nil {
		missing(t, "protoc is not installed (apt-get install protobuf-compiler)")
	}
	genGo := generator(t, root, "protoc-gen-go", "protoc-gen-go "+goVersion)
	genGRPC := generator(t, root, "protoc-gen-go-grpc", "protoc-gen-go-grpc "+strings.TrimPrefix(grpcVersion, "v"))

	out := t.TempDir()
	const module = "github.com/saltpeter/saltpeter"
	cmd := exec.Command(protoc, "-I", filepath.Join(root, "sdk"),
		"--plugin=protoc-gen-go="+genGo,
		"--plugin=protoc-gen-go-grpc="+genGRPC,
		"--go_out="+out, "--go_opt=module="+module,
		"--go-grpc_out="+out, "--go-grpc_opt=module="+module,
		filepath.Join(root, "sdk", "notifier", "proto", "notifier.proto"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
	}

	generated := filepath.Join("sdk", "notifier", "internal", "notifierpb")
	want, err := filepath.Glob(filepath.Join(out, generated, "*.go"))
	if err != nil || len(want) != 2 {
		t.Fatalf("protoc generated %q (%v), want notifier.pb.go and notifier_grpc.pb.go", want, err)
	}
	for _, p := range want {
		rel, _ := filepath.Rel(out, p)
		fresh, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%s is not checked in; run make proto", rel)
			continue
		}
		if !bytes.Equal(normalise(got), normalise(fresh)) {
			t.Errorf("%s is stale; run make proto", rel)
		}
	}
	checkedIn, _ := filepath.Glob(filepath.Join(root, generated, "*.go"))
	if len(checkedIn) != len(want) {
		t.Errorf("%s holds %d files, protoc makes %d: delete what it does not make", generated, len(checkedIn), len(want))
	}
}

// protocLine is the header line naming protoc's own version, which comes
// from the system package rather than from proto.mk's pins.
var protocLine = regexp.MustCompile(`(?m)^//\s+protoc\s+v?[0-9][^\n]*$`)

func normalise(b []byte) []byte { return protocLine.ReplaceAll(b, []byte("// protoc")) }

// makeVar reads `NAME := value` from a Makefile.
func makeVar(t *testing.T, mk []byte, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `\s*:?=\s*(\S+)\s*$`).FindSubmatch(mk)
	if m == nil {
		t.Fatalf("proto.mk sets no %s", name)
	}
	return string(m[1])
}

// generator finds a protoc plugin at the pinned version: first where
// `make proto` installs it, then on PATH.
func generator(t *testing.T, root, name, wantVersion string) string {
	t.Helper()
	var found []string
	candidates := []string{filepath.Join(root, "bin", "tools", name)}
	if p, err := exec.LookPath(name); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		b, err := exec.Command(c, "--version").Output()
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == wantVersion {
			return c
		}
		found = append(found, fmt.Sprintf("%s is %q", c, v))
	}
	missing(t, fmt.Sprintf("%s at %q not found (run make proto-tools); %s", name, wantVersion, strings.Join(found, "; ")))
	return ""
}

func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("SALTPETER_REQUIRE") == "all" {
		t.Fatal(why)
	}
	t.Skip(why)
}
