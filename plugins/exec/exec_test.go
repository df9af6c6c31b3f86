package exec_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	execnotifier "github.com/saltpeter/saltpeter/plugins/exec"
	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
)

func newNotifier(t *testing.T) *execnotifier.Notifier {
	t.Helper()
	return execnotifier.New(hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: io.Discard}))
}

func conf(t *testing.T, kv map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(kv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func configured(t *testing.T, kv map[string]any) *execnotifier.Notifier {
	t.Helper()
	n := newNotifier(t)
	if err := n.Configure(context.Background(), conf(t, kv)); err != nil {
		t.Fatalf("Configure(%v): %v", kv, err)
	}
	return n
}

// sh is a command that runs script with /bin/sh: the notifier runs no
// shell itself, the test does.
func sh(script string) []string { return []string{"/bin/sh", "-c", script, "notify"} }

// inbox is a folder the recording command writes each event it reads to,
// as ID.json, renamed into place once written.
type inbox string

func newInbox(t *testing.T) inbox { return inbox(t.TempDir()) }

func (in inbox) command() []string {
	return sh(`cat > "$INBOX/.$SALTPETER_EVENT_ID" && mv "$INBOX/.$SALTPETER_EVENT_ID" "$INBOX/$SALTPETER_EVENT_ID.json"`)
}

func (in inbox) deliveries(t *testing.T) []sdktest.Delivery {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(string(in), "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ds []sdktest.Delivery
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ev notifier.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Errorf("%s: standard input was not the event's JSON: %v: %s", f, err, b)
			continue
		}
		if name := strings.TrimSuffix(filepath.Base(f), ".json"); name != ev.ID {
			t.Errorf("SALTPETER_EVENT_ID %q, but the event's id is %q", name, ev.ID)
		}
		ds = append(ds, sdktest.Delivery{ID: ev.ID, Kind: ev.Kind})
	}
	return ds
}

func TestConformance(t *testing.T) {
	in := newInbox(t)
	sdktest.TestNotifier(t, func(t *testing.T) notifier.Notifier { return newNotifier(t) }, sdktest.NotifierFixture{
		Config:          conf(t, map[string]any{"command": in.command(), "env": map[string]string{"INBOX": string(in)}}),
		Received:        in.deliveries,
		FailingConfig:   conf(t, map[string]any{"command": sh(`cat >/dev/null; echo 'queue full' >&2; exit 75`)}),
		PermanentConfig: conf(t, map[string]any{"command": sh(`exit 3`), "permanent_exit_codes": []int{3}}),
		Hanging: func(t *testing.T) ([]byte, <-chan struct{}) {
			dir := t.TempDir()
			reached := make(chan struct{})
			go func() {
				defer close(reached)
				awaitFile(t, filepath.Join(dir, "reached"), time.Minute)
			}()
			return conf(t, map[string]any{"command": sh(`: > "$DIR/reached"; exec sleep 3600`),
				"env": map[string]string{"DIR": dir}, "timeout": "1h"}), reached
		},
	})
}

// awaitFile waits for path to appear; it does not fail the test itself,
// so that it may run in a goroutine.
func awaitFile(t *testing.T, path string, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func event() notifier.Event {
	return notifier.Event{ID: "ev-1", Kind: notifier.EventLost, Job: "backup-db", RunID: "r-9",
		Message: "backup-db lost db7", At: time.Date(2026, 3, 1, 2, 41, 0, 0, time.UTC), Attempt: 1}
}

// TestInputAndEnvironment: standard input is exactly the event's JSON;
// the environment has the config's env and the event's variables, and
// none of the core's.
func TestInputAndEnvironment(t *testing.T) {
	t.Setenv("SALTPETER_PLUGIN", "cookie-the-program-must-not-see")
	t.Setenv("PLUGIN_MIN_PORT", "10000")
	t.Setenv("NOTIFY_TEST_INHERITED", "kept")
	dir := t.TempDir()
	n := configured(t, map[string]any{
		"command": sh(`cat > "$OUT/stdin"; env > "$OUT/env"; printf '%s\n' "$@" > "$OUT/args"`),
		"env":     map[string]string{"OUT": dir, "GREETING": "it's a \"quoted\" $value"},
	})
	ev := event()
	if err := n.Notify(context.Background(), ev); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	want, _ := json.Marshal(ev)
	if got := read("stdin"); got != string(want) {
		t.Errorf("stdin = %s, want %s", got, want)
	}
	env := "\n" + read("env")
	for _, kv := range []string{"GREETING=it's a \"quoted\" $value", "SALTPETER_EVENT_ID=ev-1", "SALTPETER_EVENT_KIND=lost",
		"SALTPETER_JOB=backup-db", "SALTPETER_RUN_ID=r-9", "NOTIFY_TEST_INHERITED=kept"} {
		if !strings.Contains(env, "\n"+kv+"\n") {
			t.Errorf("the program's environment lacks %s", kv)
		}
	}
	for _, k := range []string{"SALTPETER_PLUGIN=", "PLUGIN_MIN_PORT="} {
		if strings.Contains(env, "\n"+k) {
			t.Errorf("the program got the core's %s", k)
		}
	}
	if got := read("args"); got != "\n" {
		// "$@" of sh -c SCRIPT notify is empty: no argument was added.
		t.Errorf("arguments = %q", got)
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name      string
		script    string
		permanent []int
		ok        bool
		wantErr   string
		isPerm    bool
	}{
		{"exit 0", `cat >/dev/null; exit 0`, nil, true, "", false},
		{"exit 1 with stderr", `echo "receiver said: no" >&2; exit 1`, nil, false, "exit code 1; stderr: receiver said: no", false},
		{"EX_TEMPFAIL", `echo busy >&2; exit 75`, []int{3}, false, "exit code 75; stderr: busy", false},
		{"listed as permanent", `echo "unknown team" >&2; exit 3`, []int{3, 64}, false, "exit code 3; stderr: unknown team", true},
		{"not listed", `exit 4`, []int{3}, false, "exit code 4", false},
		{"killed by a signal", `kill -TERM $$`, []int{3}, false, "signal: terminated", false},
		{"long stderr keeps its end", `i=0; while [ $i -lt 500 ]; do echo "line $i of noise" >&2; i=$((i+1)); done; exit 1`, nil, false, "line 499 of noise", false},
		{"ignores its input", `exit 0`, nil, true, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := configured(t, map[string]any{"command": sh(tt.script), "permanent_exit_codes": tt.permanent})
			err := n.Notify(context.Background(), event())
			if tt.ok {
				if err != nil {
					t.Fatalf("Notify = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Notify = %v, want an error with %q", err, tt.wantErr)
			}
			if notifier.IsPermanent(err) != tt.isPerm {
				t.Errorf("Notify = %v: permanent %v, want %v", err, notifier.IsPermanent(err), tt.isPerm)
			}
			if len(err.Error()) > 4096 {
				t.Errorf("error of %d bytes: stderr is not cut", len(err.Error()))
			}
		})
	}
}

// TestTimeoutKillsProcessGroup: at the timeout the program and what it
// started are killed, and the error says so, retryable; the same when
// the core cancels; and a program that exits leaves nothing behind.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	for _, tt := range []struct {
		name    string
		timeout string
		cancel  bool
		script  string
		wantErr string
	}{
		{"timeout", "300ms", false, `sleep 3600 & echo $! > "$DIR/pid"; wait`, "timed out after 300ms"},
		{"cancelled", "1h", true, `sleep 3600 & echo $! > "$DIR/pid"; wait`, "context canceled"},
		{"exits, leaving a child", "1h", false, `sleep 3600 & echo $! > "$DIR/pid"; exit 0`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var dir string
			var err error
			// The timeout must come after the program started its child:
			// on a loaded machine 300ms may not, and the child is then
			// never started, so the timeout grows until it is.
			for attempt, timeout := 0, tt.timeout; ; attempt++ {
				dir = t.TempDir()
				n := configured(t, map[string]any{"command": sh(tt.script), "env": map[string]string{"DIR": dir}, "timeout": timeout})
				ctx, cancel := context.WithCancel(context.Background())
				if tt.cancel {
					go func() {
						if awaitFile(t, filepath.Join(dir, "pid"), time.Minute) {
							cancel()
						}
					}()
				}
				start := time.Now()
				err = n.Notify(ctx, event())
				cancel()
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("Notify took %s", d)
				}
				if _, serr := os.Stat(filepath.Join(dir, "pid")); serr == nil || tt.cancel || attempt == 2 {
					break
				}
				d, perr := time.ParseDuration(timeout)
				if perr != nil {
					t.Fatal(perr)
				}
				timeout = (4 * d).String()
				tt.wantErr = strings.Replace(tt.wantErr, d.String(), timeout, 1)
				t.Logf("the program had not started its child before the %s timeout; again with %s", d, timeout)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Notify = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || notifier.IsPermanent(err)):
				t.Fatalf("Notify = %v, want a retryable error with %q", err, tt.wantErr)
			}
			if tt.cancel && !errors.Is(err, context.Canceled) {
				t.Errorf("a cancelled Notify = %v, want context.Canceled", err)
			}
			b, rerr := os.ReadFile(filepath.Join(dir, "pid"))
			pid, cerr := strconv.Atoi(strings.TrimSpace(string(b)))
			if rerr != nil || cerr != nil {
				t.Fatalf("the program did not record its child: %v %v", rerr, cerr)
			}
			awaitGone(t, pid)
		})
	}
}

// awaitGone waits up to 10 s for pid to be gone or a zombie.
func awaitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if s := string(b); strings.Contains(s[strings.LastIndexByte(s, ')'):], ") Z") {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d outlived the notification program", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ config, want string }{
		{`{}`, "command is required"},
		{`{"command": []}`, "command is required"},
		{`{"command": "/bin/true"}`, "cannot unmarshal string"},
		{`{"command": ["no-such-program-saltpeter"]}`, "executable file not found"},
		{`{"command": ["/bin/true"], "timeout": "forever"}`, "timeout"},
		{`{"command": ["/bin/true"], "permanent_exit_codes": [75]}`, "EX_TEMPFAIL"},
		{`{"command": ["/bin/true"], "permanent_exit_codes": [0]}`, "not a failing exit code"},
		{`{"command": ["/bin/true"], "permanent_exit_codes": [256]}`, "not a failing exit code"},
		{`{"command": ["/bin/true"], "env": {"A=B": "x"}}`, "not a variable name"},
		{`{"command": ["/bin/true"], "env": {"SALTPETER_PLUGIN": "x"}}`, "the core's"},
		{`{"command": ["/bin/true"], "shell": true}`, `unknown field "shell"`},
	}
	for _, tt := range tests {
		err := newNotifier(t).Configure(context.Background(), []byte(tt.config))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Configure(%s) = %v, want an error with %q", tt.config, err, tt.want)
		}
	}
	// A name is looked up in PATH.
	if err := newNotifier(t).Configure(context.Background(), []byte(`{"command": ["true"]}`)); err != nil {
		t.Errorf("Configure with a command found in PATH: %v", err)
	}
}
