//go:build linux

package wrapper

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

func TestReadEnv(t *testing.T) {
	const secret = "s3cret-value"
	for _, tc := range []struct {
		name    string
		in      string
		want    []string
		wantErr string // in the error; "" accepts
	}{
		{name: "empty", in: "", want: nil},
		{name: "one NUL only", in: "\x00", want: nil},
		{name: "records each ended by NUL", in: "A=1\x00B=2\x00", want: []string{"A=1", "B=2"}},
		{name: "last record without its NUL", in: "A=1\x00B=2", want: []string{"A=1", "B=2"}},
		{name: "values keep everything but NUL", in: "A=x=y\x00B=line 1\nline 2 'q' \"$HOME\"\x00C=\x00",
			want: []string{"A=x=y", "B=line 1\nline 2 'q' \"$HOME\"", "C="}},
		{name: "order kept", in: "Z=1\x00A=2\x00", want: []string{"Z=1", "A=2"}},
		{name: "no equals sign", in: "A=1\x00" + secret + "\x00", wantErr: `record 2 is not KEY=VALUE`},
		{name: "empty name", in: "=" + secret + "\x00", wantErr: "record 1 has an empty name"},
		{name: "empty record", in: "A=1\x00\x00B=2\x00", wantErr: "record 2 is empty"},
		{name: "leading NUL", in: "\x00A=1", wantErr: "record 1 is empty"},
		{name: "twice", in: "SP_TOKEN=a\x00SP_TOKEN=" + secret + "\x00", wantErr: `record 2 sets "SP_TOKEN" a second time`},
		{name: "the detach marker", in: envDetached + "=1\x00", wantErr: "wrapper's own"},
		{name: "too much", in: "A=" + strings.Repeat("x", maxEnvInput), wantErr: "more than 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadEnv(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ReadEnv = %q, %v; want an error with %q", got, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows a value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadEnv: %v", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ReadEnv = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWithEnvTakesTheDispatchVariablesFromStdinOnly(t *testing.T) {
	base := []string{"PATH=/bin", "SP_TOKEN=from-the-process", "SP_CA_FILE=/stale", "HOME=/root", "SPARE=1"}
	got := WithEnv(base, []string{"SP_TOKEN=from-stdin", "PATH=/usr/bin"})
	get := Getenv(got)
	for k, want := range map[string]string{
		"SP_TOKEN":   "from-stdin",
		"SP_CA_FILE": "", // the process's dispatch variables do not count
		"PATH":       "/usr/bin",
		"HOME":       "/root",
		"SPARE":      "1",
		"NOPE":       "",
	} {
		if v := get(k); v != want {
			t.Errorf("%s = %q, want %q (env %q)", k, v, want, got)
		}
	}
}

// TestBinaryEnvStdin: with -env-stdin the real binary takes the dispatch
// environment from its standard input, not from its process environment
// (whose SP_ variables are wrong here), detaches exactly as without it,
// and hands the detached copy the same configuration in its environment:
// it dials the core with the token from stdin, which is on no command
// line.
func TestBinaryEnvStdin(t *testing.T) {
	core := newFakeCore(t, testSpec())
	core.set(func() { core.holdConnect = true })
	var stdin bytes.Buffer
	for _, kv := range dispatchEnv(core) {
		if strings.HasPrefix(kv, "SP_") {
			stdin.WriteString(kv + "\x00")
		}
	}
	cmd := exec.Command(wrapperBin, "-env-stdin")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/", wire.EnvToken + "=wrong-token", wire.EnvWebSocketURL + "=ws://wrong.invalid/ws"}
	cmd.Stdin = &stdin
	pid := runDetaching(t, cmd)

	core.await(t, "the detached wrapper's connect", func() bool { return len(core.connects) == 1 })
	if c := core.connects[0]; c.Token != testToken {
		t.Errorf("the detached wrapper connected with another token than the one on stdin")
	}
	if sid := sessionOf(t, pid); sid != pid {
		t.Errorf("detached wrapper %d is in session %d, want its own", pid, sid)
	}
	if in, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", pid)); err != nil || in != os.DevNull {
		t.Errorf("detached wrapper's stdin is %q (%v), want %s", in, err, os.DevNull)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cmdline, []byte(testToken)) {
		t.Errorf("the token is on the detached wrapper's command line %q", cmdline)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(strings.TrimSuffix(string(environ), "\x00"), "\x00")
	for _, want := range []string{wire.EnvToken + "=" + testToken, "PATH=/usr/bin:/bin", "HOME=/", envDetached + "=1"} {
		if !slices.Contains(env, want) {
			t.Errorf("the detached wrapper's environment lacks %q", strings.SplitN(want, "=", 2)[0])
		}
	}
	if slices.Contains(env, wire.EnvToken+"=wrong-token") || slices.Contains(env, wire.EnvWebSocketURL+"=ws://wrong.invalid/ws") {
		t.Error("the detached wrapper kept a dispatch variable of the process environment")
	}
}

// TestBinaryEnvStdinRefusesMalformedInput: exit 2, a message on stderr
// that names the record, nothing on stdout, and no detached copy.
func TestBinaryEnvStdinRefusesMalformedInput(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"no equals sign", "SP_JOB_NAME=x\x00not-a-record\x00", "record 2 is not KEY=VALUE"},
		{"empty", "", "SP_TOKEN is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(wrapperBin, "-env-stdin")
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			cmd.Stdin = strings.NewReader(tc.in)
			wantRefused(t, cmd, tc.want)
		})
	}
}

// TestBinaryEnvStdinInPlace: a wrapper its target started detached, with
// -env-stdin (the local target's spare), reads its dispatch environment
// from standard input, then runs the job itself: the process the target
// started, whose job gets the dispatch variables from stdin and the
// process environment's others, but neither the token nor a detach
// marker; and the token is in no process environment.
func TestBinaryEnvStdinInPlace(t *testing.T) {
	core := newFakeCore(t, shellSpec(`printf 'job=%s home=%s token=%s by_target=%s\n' "${SP_JOB_NAME-unset}" "${HOME-unset}" "${SP_TOKEN-unset}" "${`+wire.EnvDetachedByTarget+`-unset}"`))
	var stdin bytes.Buffer
	for _, kv := range dispatchEnv(core) {
		if strings.HasPrefix(kv, "SP_") {
			stdin.WriteString(kv + "\x00")
		}
	}
	env := []string{"PATH=/usr/bin:/bin", "HOME=/home/spare", wire.EnvDetachedByTarget + "=1"}
	pid, cmd, exited := startedByTargetWith(t, env, true, stdin.Bytes(), "-env-stdin")
	if pid != cmd.Process.Pid {
		t.Fatalf("the detach line names pid %d, not the process the target started (%d)", pid, cmd.Process.Pid)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(environ, []byte(testToken)) {
		t.Error("the token is in the wrapper's process environment")
	}
	f := core.awaitComplete(t)
	checkComplete(t, f, 0, wire.ReasonExit)
	if c := core.connects[0]; c.Token != testToken {
		t.Error("the wrapper connected with another token than the one on stdin")
	}
	if got, want := string(core.output(wire.StreamStdout)), "job="+testJob+" home=/home/spare token=unset by_target=unset\n"; got != want {
		t.Errorf("the job printed %q, want %q", got, want)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the wrapper did not exit within 30s of its complete")
	}
}
