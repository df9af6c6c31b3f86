package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// withPieceSize has parseFile cut as often as size allows for the test.
func withPieceSize(t testing.TB, size int) {
	t.Helper()
	old := pieceSize
	pieceSize = size
	t.Cleanup(func() { pieceSize = old })
}

func TestPieceCuts(t *testing.T) {
	tests := []struct {
		name string
		src  string
		size int
		want []int
	}{
		{"small file", "a {\n}\nb {\n}\n", 100, nil},
		{"after a closing brace", "a {\n}\nb {\n}\n", 1, []int{6}},
		{"blank lines between", "a {\n}\n\n  \t\nb {\n}\n", 1, []int{11}},
		{"crlf and spaces after the brace", "a {\r\n} \r\n\r\nb {\r\n}\r\n", 1, []int{11}},
		{"every block when the size is 1", "a {\n}\nb {\n}\nc {\n}\n", 1, []int{6, 12}},
		{"the size apart", "a {\n}\nb {\n}\nc {\n}\nd {\n}\n", 8, []int{12}},
		{"indented line after the brace", "a {\n  b {\n}\n  x = 1\n}\nc {\n}\n", 1, []int{22}},
		{"comment after the brace", "a {\n}\n# c\nb {\n}\n", 1, []int{6}},
		{"slash comment after the brace", "a {\n}\n\n// c\nb {\n}\n", 1, []int{7}},
		{"neither a letter nor a comment", "a {\n}\n\"b\" {\n}\n", 1, nil},
		{"more on the brace's line", "a {\n} b {\n}\nc {\n}\n", 1, []int{12}},
		{"brace at the end", "a {\n}", 1, nil},
		{"brace and newline at the end", "a {\n}\n", 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pieceCuts([]byte(tt.src), tt.size); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("pieceCuts(%q, %d) = %v, want %v", tt.src, tt.size, got, tt.want)
			}
		})
	}
}

// pieceSources are sources whose cuts fall where a piece must not end (a
// heredoc, a comment, an unclosed block, a string) or where pieces must be
// joined exactly (ranges after multi-byte characters and CRLF, arguments
// at the top level), with mistakes in later pieces.
var pieceSources = map[string]string{
	"jobs": manyJobsSource(40),
	"heredoc": `job "a" {
  command = <<-SH
    echo start
}

job "inside" {
    SH
  target "local" {}
}

job "b" {
  command = "true"
}
`,
	"block comment": `job "a" {
}
/*
}

job "commented" {
}
/* */

job "b" {
}
`,
	"unindented block body": `job "a" {
target "local" {
}
schedule = "@hourly"
}

job "b" {
}
`,
	"multi-byte characters and crlf": "job \"ä\" {\r\n  command = \"échö ✓ 👍🏽\"\r\n}\r\n\r\njob \"b\" {\r\n  command = \"ü\"\r\n}\r\n",
	"top-level arguments": `a = 1
job "a" {
}
b = 2
job "b" {
}
a = 3
`,
	"mistake in a later piece": `job "a" {
}
job "b" {
  schedule = 
}
job "c" {
}
`,
	"unclosed last block": `job "a" {
}
job "b" {
`,
	"template directives": `job "a" {
  command = "%{ if true }x%{ endif }"
}
job "b" {
  env = { A = "${upper("x")}" }
}
`,
	"byte order mark": "\ufeffjob \"a\" {\n}\njob \"b\" {\n}\n",
}

func manyJobsSource(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "# job %d\njob \"j%03d\" {\n  schedule = \"%d * * * *\"\n  command  = \"echo %d\"\n  target \"local\" {}\n}\n\n", i, i, i%60, i)
	}
	return b.String()
}

// TestParseFileInPieces checks that a file parsed in pieces is the file
// ParseConfig returns for the whole source: the same tree, ranges and
// diagnostics, cut before every block it can be.
func TestParseFileInPieces(t *testing.T) {
	withPieceSize(t, 1)
	for name, src := range pieceSources {
		t.Run(name, func(t *testing.T) {
			checkPieces(t, []byte(src))
		})
	}
	t.Run("full example", func(t *testing.T) {
		src, err := os.ReadFile(filepath.Join("testdata", "full.hcl"))
		if err != nil {
			t.Fatal(err)
		}
		checkPieces(t, src)
	})
}

func checkPieces(t *testing.T, src []byte) {
	t.Helper()
	want, wantDiags := hclsyntax.ParseConfig(src, "f.hcl", hcl.InitialPos)
	got, gotDiags := parseFile(src, "f.hcl")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed in pieces (cuts %v), the file differs from one parse of the whole source", pieceCuts(src, pieceSize))
	}
	if g, w := fmt.Sprint(gotDiags), fmt.Sprint(wantDiags); g != w {
		t.Errorf("diagnostics in pieces:\n%s\nwant:\n%s", g, w)
	}
}

// FuzzParseFileInPieces checks parseFile against ParseConfig on any
// source.
func FuzzParseFileInPieces(f *testing.F) {
	for _, src := range pieceSources {
		f.Add([]byte(src))
	}
	withPieceSize(f, 1)
	f.Fuzz(func(t *testing.T, src []byte) {
		checkPieces(t, src)
	})
}

// TestLoadInPiecesSameConfig loads a file of many jobs in pieces and at
// once: the configurations are the same.
func TestLoadInPiecesSameConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.hcl")
	src := manyJobsSource(300)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	withPieceSize(t, 1<<30)
	whole, wholeDiags := Load(path)
	withPieceSize(t, 512)
	if n := len(pieceCuts([]byte(src), pieceSize)); n < 10 {
		t.Fatalf("%d cuts: the test means many pieces", n)
	}
	pieces, piecesDiags := Load(path)
	if len(wholeDiags) > 0 || len(piecesDiags) > 0 {
		t.Fatalf("diagnostics: at once %v, in pieces %v", wholeDiags, piecesDiags)
	}
	if len(pieces.Jobs) != 300 || !reflect.DeepEqual(pieces, whole) {
		t.Errorf("in pieces, %d jobs and a configuration that differs from the one loaded at once", len(pieces.Jobs))
	}
}
