package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
)

// parseInterleaved parses fs from args and returns the positional
// arguments, letting flags come before, between or after them: "logs RUN
// -f" reads as naturally as "logs -f RUN", and the flag package alone
// stops at the first argument that is not a flag. After "--" everything
// is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if used := len(args) - fs.NArg(); used > 0 && args[used-1] == "--" {
			return append(pos, fs.Args()...), nil
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// runIDRE is a run id as the core writes it: 26 digits of Crockford's
// base32, upper case (see core/runner/ids.go).
var runIDRE = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

// looksLikeRunID tells "kill ID" from "kill JOB". A job may in principle
// be named like a run id; -job and -run settle that case.
func looksLikeRunID(s string) bool { return runIDRE.MatchString(s) }

// isTerminal reports whether w is a character device. The CLI needs no
// more than that to decide whether a progress line helps someone or
// litters a pipe, and it keeps the dependency list as it is.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// getJSON fetches path and returns the body as the API sent it, for -json,
// after decoding it into out for the table.
func (c *client) getJSON(ctx context.Context, path string, out any) ([]byte, error) {
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read response of GET %s: %w", path, err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("decode response of GET %s: %w", path, err)
		}
	}
	return data, nil
}

// writeRaw prints the API's JSON unchanged, one document per line.
func writeRaw(w io.Writer, data []byte) {
	w.Write(data)
	if len(data) == 0 || data[len(data)-1] != '\n' {
		io.WriteString(w, "\n")
	}
}

// orDash prints a missing value as "-", so table columns stay aligned.
func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

// usageErr prints a usage mistake and returns the usage exit code.
func usageErr(stderr io.Writer, cmd, format string, args ...any) int {
	fmt.Fprintf(stderr, "saltpeter %s: %s\n", cmd, fmt.Sprintf(format, args...))
	return 2
}

// parseFailed maps a flag parse error to an exit code: -h is not a
// mistake.
func parseFailed(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
