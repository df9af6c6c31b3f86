package salt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/saltpeter/saltpeter/sdk/target"
)

// TestShellWord: plain paths stay as they are, anything else is quoted
// for POSIX splitting. (That Salt's split gives them back whole is
// checked against the stand-in in TestDispatchLowstate.)
func TestShellWord(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/usr/local/bin/saltpeter-wrapper", "/usr/local/bin/saltpeter-wrapper"},
		{"saltpeter-wrapper", "saltpeter-wrapper"},
		{"/opt/a b", "'/opt/a b'"},
		{"/opt/it's", `'/opt/it'\''s'`},
		{`/opt/$x;"y"`, `'/opt/$x;"y"'`},
		{"", "''"},
	}
	for _, tt := range tests {
		if got := shellWord(tt.in); got != tt.want {
			t.Errorf("shellWord(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestRunBgReturn: a pid, an error string, and what is neither.
func TestRunBgReturn(t *testing.T) {
	tests := []struct {
		ret     string
		pid     int64
		failure string
		err     bool
	}{
		{`{"pid": 123}`, 123, "", false},
		{`{"pid": 123.0}`, 123, "", false},
		{`"ERROR: boom"`, 0, "ERROR: boom", false},
		{`""`, 0, "(empty return)", false},
		{`{"pid": null}`, 0, "", true},
		{`{"pid": -1}`, 0, "", true},
		{`{"pid": 1.5}`, 0, "", true},
		{`true`, 0, "", true},
	}
	for _, tt := range tests {
		pid, failure, err := runBgReturn(json.RawMessage(tt.ret))
		if pid != tt.pid || failure != tt.failure || (err != nil) != tt.err {
			t.Errorf("runBgReturn(%s) = %d, %q, %v", tt.ret, pid, failure, err)
		}
	}
}

// TestClipFailure: Salt's context dump is cut, the reason kept.
func TestClipFailure(t *testing.T) {
	in := "ERROR: Unable to run command '['/x']' with the context '{'env': {'SP_TOKEN': 'secret'}, 'x': 'a', reason: b'}', reason: [Errno 2] No such file or directory: '/x'"
	want := "ERROR: Unable to run command '['/x']', reason: [Errno 2] No such file or directory: '/x'"
	if got := clipFailure(in); got != want {
		t.Errorf("clipFailure = %q, want %q", got, want)
	}
	long := strings.Repeat("é", 2*maxFailure)
	if got := clipFailure(long); len([]rune(got)) != maxFailure+2 {
		t.Errorf("clipFailure of %d runes = %d runes", 2*maxFailure, len([]rune(got)))
	}
}

// TestRedact: the secret goes, the kinds errors.Is looks for stay, and
// nothing else is reachable.
func TestRedact(t *testing.T) {
	inner := fmt.Errorf("env SP_TOKEN=tok-1 refused: %w", target.ErrUnreachable)
	err := redact(fmt.Errorf("dispatch: %w: %w", inner, context.Canceled), "tok-1")
	if strings.Contains(err.Error(), "tok-1") || !strings.Contains(err.Error(), "SP_TOKEN=[redacted]") {
		t.Errorf("redact = %q", err)
	}
	if !errors.Is(err, target.ErrUnreachable) || !errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("redact lost or invented a kind: %v", err)
	}
	var walk func(error)
	walk = func(e error) {
		if e != err && strings.Contains(e.Error(), "tok-1") {
			t.Errorf("%q is reachable through Unwrap", e)
		}
		if u, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range u.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
}

// TestSilentSetBounded: the memory of silent minions keeps the latest
// targets up to its bound, and forgets a target whose minions all
// answered.
func TestSilentSetBounded(t *testing.T) {
	s := newSilentSet(3)
	for i := range 5 {
		s.remember(fmt.Sprint(i), map[string]string{"m": fmt.Sprint("why ", i)})
	}
	if s.len() != 3 {
		t.Fatalf("len = %d, want 3", s.len())
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := s.reason(fmt.Sprint(i), "m"); ok != want {
			t.Errorf("target %d remembered = %v, want %v", i, ok, want)
		}
	}
	// Re-resolving an old target makes it the newest.
	s.remember("2", map[string]string{"m": "again"})
	s.remember("5", map[string]string{"m": "new"})
	if _, ok := s.reason("2", "m"); !ok {
		t.Error("target 2, resolved again, was dropped")
	}
	if _, ok := s.reason("3", "m"); ok {
		t.Error("target 3, the oldest, was kept")
	}
	s.remember("2", nil)
	if _, ok := s.reason("2", "m"); ok || s.len() != 2 {
		t.Errorf("a target with no silent minion is still remembered (len %d)", s.len())
	}
}

// TestMessage: salt-api's word is found in its JSON errors and in
// CherryPy's pages.
func TestMessage(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"status": 500, "return": "An unexpected error occurred"}`, "An unexpected error occurred"},
		{"<html><head><title>401 Unauthorized</title></head><body><h2>401 Unauthorized</h2>\n<p>Could not authenticate using provided credentials</p><pre id=\"traceback\"></pre></body></html>", "Could not authenticate using provided credentials"},
		{"<html><body><h1>502 Bad Gateway</h1></body></html>", "502 Bad Gateway"},
		{"", "(empty answer)"},
		{"plain &amp; simple", "plain & simple"},
	}
	for _, tt := range tests {
		if got := message([]byte(tt.body)); got != tt.want {
			t.Errorf("message(%q) = %q, want %q", tt.body, got, tt.want)
		}
	}
}
