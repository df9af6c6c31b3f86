package api

import (
	"strings"
	"testing"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		optional bool
		code     string // "" for success
		says     string
	}{
		{"object", `{"signal":"SIGINT"}`, false, "", ""},
		{"blank optional", " \n", true, "", ""},
		{"blank required", "", false, CodeBadJSON, "empty"},
		{"syntax", `{"signal" "SIGINT"}`, false, CodeBadJSON, "at byte 11"},
		{"truncated", `{"signal":"SIG`, false, CodeBadJSON, "ends in the middle"},
		{"unknown field", `{"signal":"SIGINT","force":true}`, false, CodeBadJSON, `"force"`},
		{"wrong type", `{"signal":15}`, false, CodeBadJSON, `"signal" must be a string`},
		{"not an object", `["SIGINT"]`, false, CodeBadJSON, "JSON object"},
		{"trailing data", `{"signal":"SIGINT"} {}`, false, CodeBadJSON, "after the JSON object"},
		{"trailing brace", `{"signal":"SIGINT"}}`, false, CodeBadJSON, "after the JSON object"},
		{"invalid UTF-8 in a string", "{\"signal\":\"\xff\"}", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v killBody
			e := decodeJSON([]byte(tt.body), &v, tt.optional)
			if tt.code == "" {
				if e != nil {
					t.Fatalf("decodeJSON(%q) = %v, want success", tt.body, e)
				}
				return
			}
			if e == nil {
				t.Fatalf("decodeJSON(%q) succeeded, want %s", tt.body, tt.code)
			}
			if e.Code != tt.code || e.Status != 400 || !strings.Contains(e.Message, tt.says) {
				t.Fatalf("decodeJSON(%q) = %d %s %q, want 400 %s saying %q", tt.body, e.Status, e.Code, e.Message, tt.code, tt.says)
			}
		})
	}
}

// FuzzJSONBodies feeds the same bytes to the kill and signal body parsers:
// neither may panic, every refusal is a 400 with a code and a sentence,
// and whatever is accepted is a well-formed request.
func FuzzJSONBodies(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"signal":"SIGINT","grace":"10s"}`, `{"signal":"SIGKILL"}`, `{"grace":"1d2h"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		k, e := parseKillBody(data)
		if e != nil {
			checkRefusal(t, "kill", data, e)
		} else {
			if k.Signal != "" {
				if c, ok := wire.CanonicalSignal(k.Signal); !ok || c != k.Signal {
					t.Fatalf("kill body %q accepted signal %q, not canonical", data, k.Signal)
				}
			}
			if k.Grace < 0 {
				t.Fatalf("kill body %q accepted negative grace %v", data, k.Grace)
			}
		}
		s, e := parseSignalBody(data)
		if e != nil {
			checkRefusal(t, "signal", data, e)
			return
		}
		c, ok := wire.CanonicalSignal(s.Signal)
		if !ok || c != s.Signal || c == "SIGKILL" {
			t.Fatalf("signal body %q accepted signal %q", data, s.Signal)
		}
	})
}

func checkRefusal(t *testing.T, what string, data []byte, e *Error) {
	t.Helper()
	if e.Status != 400 || (e.Code != CodeBadJSON && e.Code != CodeBadRequest) || e.Message == "" {
		t.Fatalf("%s body %q refused with %d %s %q", what, data, e.Status, e.Code, e.Message)
	}
}
