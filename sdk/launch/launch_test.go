package launch

import (
	"bufio"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

func TestEnvironPassesOnlyWhatItIsTold(t *testing.T) {
	t.Setenv("PATH", "/bin")
	t.Setenv("SECRET_OF_THE_PLUGIN", "x")
	tests := []struct {
		name     string
		dispatch map[string]string
		pass     []string
		want     []string
		wantErr  bool
	}{
		{"defaults", map[string]string{"SP_TOKEN": "t"}, nil, []string{"PATH=/bin", "SP_TOKEN=t"}, false},
		{"dispatch wins", map[string]string{"PATH": "/opt"}, nil, []string{"PATH=/opt"}, false},
		{"chosen pass list", map[string]string{"A": "1"}, []string{"SECRET_OF_THE_PLUGIN"}, []string{"A=1", "SECRET_OF_THE_PLUGIN=x"}, false},
		{"bad name", map[string]string{"A=B": "1"}, nil, nil, true},
		{"NUL in value", map[string]string{"A": "1\x002"}, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Environ(tc.dispatch, tc.pass...)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			// HOME and LANG may be set on the machine; look only at the rest.
			got = slices.DeleteFunc(got, func(s string) bool {
				return strings.HasPrefix(s, "HOME=") || strings.HasPrefix(s, "LANG=")
			})
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Environ = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStartRefusesUnknownProtocolAndDoneContext(t *testing.T) {
	if _, err := Start(context.Background(), nil, Command{Path: "/bin/true", Protocol: 3}); err == nil || !strings.Contains(err.Error(), "protocol 3") {
		t.Fatalf("protocol 3: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, nil, Command{Path: "/bin/true"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestReadDetachLine(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{"line", wire.DetachedLine + " pid=7\nmore\n", wire.DetachedLine + " pid=7", nil},
		{"CRLF", "a line\r\n", "a line", nil},
		{"last line without newline", "no newline", "no newline", nil},
		{"nothing", "", "", io.EOF},
		{"bound", strings.Repeat("x", MaxDetachLine-1) + "\n", strings.Repeat("x", MaxDetachLine-1), nil},
		{"too long", strings.Repeat("x", MaxDetachLine+1) + "\n", "", bufio.ErrBufferFull},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadDetachLine(strings.NewReader(tc.in))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("line = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEnvRecords(t *testing.T) {
	got, err := EnvRecords(map[string]string{"B": "2\nlines 'q'", "A": "x=y", "C": ""})
	if err != nil {
		t.Fatal(err)
	}
	if want := "A=x=y\x00B=2\nlines 'q'\x00C=\x00"; string(got) != want {
		t.Errorf("EnvRecords = %q, want %q", got, want)
	}
	for _, bad := range []map[string]string{{"": "x"}, {"A=B": "x"}, {"A\x00": "x"}, {"A": "x\x00y"}} {
		if _, err := EnvRecords(bad); err == nil {
			t.Errorf("EnvRecords(%q) accepted it", bad)
		}
	}
}
