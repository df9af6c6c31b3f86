package sshtarget

import (
	"strings"
	"testing"
)

func TestHostAddr(t *testing.T) {
	tests := []struct {
		machine string
		port    int
		want    string // "" is an error
	}{
		{"web1", 22, "web1:22"},
		{"web1", 2200, "web1:2200"},
		{"web2:2222", 22, "web2:2222"},
		{"10.0.0.7", 22, "10.0.0.7:22"},
		{"::1", 22, "[::1]:22"},
		{"[::1]", 2200, "[::1]:2200"},
		{"[2001:db8::7]:2222", 22, "[2001:db8::7]:2222"},
		{"web1:", 22, ""},
		{"web1:0", 22, ""},
		{":22", 22, ""},
		{"[]", 22, ""},
		{"a@b", 22, ""},
		{"web1\n", 22, ""},
	}
	for _, tc := range tests {
		got, err := hostAddr(tc.machine, tc.port)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("hostAddr(%q) = %q, want an error", tc.machine, got)
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("hostAddr(%q, %d) = %q, %v; want %q", tc.machine, tc.port, got, err, tc.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	tests := map[string]string{
		"plain":          `'plain'`,
		"it's":           `'it'\''s'`,
		"$HOME `id` \\n": `'$HOME ` + "`id`" + ` \n'`,
		"":               `''`,
	}
	for in, want := range tests {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
	if !strings.Contains(v2Command("/a b/w'x"), `'/a b/w'\''x'`) {
		t.Errorf("v2Command does not quote the path: %s", v2Command("/a b/w'x"))
	}
}
