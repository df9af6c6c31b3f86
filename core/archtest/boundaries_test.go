package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/saltpeter/saltpeter"

// rules: a package in a part may import, of ours, only packages in the
// parts allowed (a part is a directory and everything under it). The
// first part that holds a package is its rule; a plugin may import its
// own packages besides.
var rules = []struct {
	part    string
	allowed []string
}{
	{"sdk", []string{"sdk"}},
	{"wrapper", []string{"wrapper", "sdk/wire"}},
	{"examples", []string{"sdk"}},
	// The built-in plugins' registry, which the saltpeter binary serves
	// them from: it names them all.
	{"plugins/builtin", []string{"plugins", "sdk"}},
	// Slack's notifier posts through the webhook notifier's Poster and
	// its classes of HTTP answers.
	{"plugins/slack", []string{"plugins/webhook", "sdk"}},
	{"plugins", []string{"sdk"}},
}

// in reports whether the package path rel is in part.
func in(rel, part string) bool {
	return rel == part || strings.HasPrefix(rel, part+"/")
}

// pkg is what go list says of a package.
type pkg struct {
	ImportPath string
	Deps       []string
}

func TestBoundaries(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages of %s, too few to be the repository", len(pkgs), module)
	}
	checked := 0
	for _, p := range pkgs {
		rel, ok := ours(p.ImportPath)
		if !ok || strings.HasSuffix(rel, ".test") {
			continue // not ours, or a test's generated main
		}
		allowed, ruled := allowedFor(rel)
		if !ruled {
			continue // the core, and the module's root
		}
		checked++
		// Deps, not Imports: a part must not reach further through an
		// allowed package either.
		for _, d := range p.Deps {
			drel, ok := ours(d)
			if !ok || permitted(rel, drel, allowed) {
				continue
			}
			t.Errorf("%s depends on %s, outside what it may import (%s)", rel, drel, strings.Join(allowed, ", "))
		}
	}
	if checked == 0 {
		t.Fatal("no package of the SDK, the plugins, the wrapper or the examples was checked")
	}
}

// ours returns the path of one of the module's packages relative to the
// module, without what go list adds for a test's build of it (" [p.test]")
// and with an external test package counted as its directory's.
func ours(path string) (string, bool) {
	path, _, _ = strings.Cut(path, " ")
	rel, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return "", false
	}
	return strings.TrimSuffix(rel, "_test"), true
}

func allowedFor(rel string) ([]string, bool) {
	for _, r := range rules {
		if in(rel, r.part) {
			return r.allowed, true
		}
	}
	return nil, false
}

// permitted reports whether rel may depend on dep: a package in an
// allowed part, or, for a plugin, one of the plugin's own packages.
func permitted(rel, dep string, allowed []string) bool {
	for _, a := range allowed {
		if in(dep, a) {
			return true
		}
	}
	if parts := strings.SplitN(rel, "/", 3); parts[0] == "plugins" && len(parts) > 1 {
		return in(dep, "plugins/"+parts[1])
	}
	return false
}

// listPackages runs go list over the module, tests' imports included.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-test", "-json=ImportPath,Deps", "./...")
	cmd.Dir = filepath.Join("..", "..") // go test runs a test in its package's directory
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list's output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}
