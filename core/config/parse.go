package config

import (
	"bytes"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// pieceSize is about how many bytes of a file parseFile parses at once.
// hclsyntax lexes a whole source into one slice of tokens (96 bytes
// each) before it parses them: 10,000 job blocks (850 kB, 280,000
// tokens) grow it to 32 MB, allocating 155 MB on the way, and every
// garbage collection meanwhile scans it. A piece of 32 kB has a slice of
// about 1 MB that is garbage once the piece is parsed: loading those
// 10,000 jobs in a fresh process took 0.65 to 0.9 s of CPU instead of
// 1.15 to 1.55 s.
var pieceSize = 32 << 10

// parseFile parses one file as hclsyntax.ParseConfig does, and returns
// the same file (the same body, ranges and all, and Bytes the whole
// source), but parses a large one in pieces cut before top-level blocks
// (pieceCuts), each from where it starts in the source so that its
// ranges are the whole file's, and joins their bodies into the first
// piece's.
//
// A cut is only a guess at where a top-level item starts: a piece that
// ends inside a block, a heredoc, a comment or a string has a diagnostic
// (an unclosed block or string), since the lexer reads a piece exactly as
// it reads the same bytes in the whole source. So a piece with any
// diagnostic, or an argument set in two pieces, has the whole source
// parsed again at once: what an operator is told of a mistake is what
// ParseConfig says, to the letter.
func parseFile(src []byte, filename string) (*hcl.File, hcl.Diagnostics) {
	cuts := pieceCuts(src, pieceSize)
	if len(cuts) == 0 {
		return hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	}
	var file *hcl.File
	var root *hclsyntax.Body
	start := hcl.InitialPos
	for _, end := range append(cuts, len(src)) {
		f, diags := hclsyntax.ParseConfig(src[start.Byte:end], filename, start)
		if len(diags) > 0 {
			return hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
		}
		body := f.Body.(*hclsyntax.Body)
		if root == nil {
			// The first piece's File navigates its body for the
			// diagnostics' context ("in job ..."): the other pieces join
			// that body, so it navigates them too.
			file, root = f, body
		} else {
			for name, a := range body.Attributes {
				if _, dup := root.Attributes[name]; dup {
					return hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
				}
				root.Attributes[name] = a
			}
			root.Blocks = append(root.Blocks, body.Blocks...)
			root.SrcRange.End = body.SrcRange.End
			root.EndRange = body.EndRange
		}
		start = hcl.Pos{Line: start.Line + bytes.Count(src[start.Byte:end], newline), Column: 1, Byte: end}
	}
	file.Bytes = src
	return file, nil
}

var newline = []byte{'\n'}

// pieceCuts returns where parseFile cuts src, every size bytes or so:
// each cut is the start of an unindented line that begins with a letter
// (a top-level block's type) or a comment, and follows a line that is
// only a closing brace (the end of the block before), blank lines
// between. In a file laid out as usual every piece then holds whole
// top-level blocks; elsewhere a piece has a diagnostic and parseFile
// parses the whole source again. Nil: no cut, src is small or has no
// such line.
func pieceCuts(src []byte, size int) []int {
	var cuts []int
	from := size
	for from < len(src) {
		i := bytes.Index(src[from:], []byte("\n}"))
		if i < 0 {
			break
		}
		at := skipBlank(src, from+i+2) // after the brace
		if at < len(src) && src[at] != '\n' {
			from = at // more on the brace's line
			continue
		}
		// The next line that is not blank.
		for at < len(src) && src[at] == '\n' {
			at = skipBlank(src, at+1)
		}
		if at < len(src) && startsItem(src[at]) && src[at-1] == '\n' {
			cuts = append(cuts, at)
			from = at + size
			continue
		}
		from = at
	}
	return cuts
}

// skipBlank skips spaces, tabs and carriage returns from i.
func skipBlank(src []byte, i int) int {
	for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\r') {
		i++
	}
	return i
}

// startsItem reports whether a line that starts with b may start a
// top-level block, or the comment over it.
func startsItem(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || b == '#' || b == '/'
}
