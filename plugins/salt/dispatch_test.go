package salt_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/saltpeter/saltpeter/plugins/salt/salttest"
	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// TestDispatchLowstate: the wrapper is started with cmd.run_bg on exactly
// the one minion, the command alone in cmd (quoted so that Salt's split
// gives it back whole) and the dispatch environment in env, with
// clean_env, no shell and no locale variables: the token appears in the
// request once, in env.
func TestDispatchLowstate(t *testing.T) {
	tests := []struct {
		name       string
		wrapper    string
		wantCmd    string
		minionPath any
		envPath    string
		wantPath   string
	}{
		{"plain path", "/usr/local/bin/saltpeter-wrapper", "/usr/local/bin/saltpeter-wrapper", nil, "", defaultPath},
		{"default wrapper", "", "saltpeter-wrapper", nil, "", defaultPath},
		{"path with a space and a quote", "/opt/salt peter/it's wrapper", `'/opt/salt peter/it'\''s wrapper'`, nil, "", defaultPath},
		{"shell syntax in the path", "/opt/$(id)/a;b*", `'/opt/$(id)/a;b*'`, nil, "", defaultPath},
		{"minion_path", "/usr/local/bin/saltpeter-wrapper", "/usr/local/bin/saltpeter-wrapper", "/opt/bin:/bin", "", "/opt/bin:/bin"},
		{"the dispatch environment's PATH wins", "/usr/local/bin/saltpeter-wrapper", "/usr/local/bin/saltpeter-wrapper", "/opt/bin", "/job/bin:/bin", "/job/bin:/bin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web1"}, {ID: "web10"}}})
			tgt, _ := configured(t, s, map[string]any{"minion_path": tt.minionPath})
			req := request("j", "run-1", "web1", args("web*", ""))
			req.WrapperPath = tt.wrapper
			if tt.envPath != "" {
				req.Env["PATH"] = tt.envPath
			}
			res, err := tgt.Dispatch(ctx(t), req)
			if err != nil {
				t.Fatalf("Dispatch: %v", err)
			}
			call := lastRunBg(t, s)
			low := call.Lowstate
			if low["client"] != "local_async" || low["tgt_type"] != "list" || !reflect.DeepEqual(low["tgt"], []any{"web1"}) {
				t.Errorf("client %v, tgt %v, tgt_type %v; want local_async to the list [web1]", low["client"], low["tgt"], low["tgt_type"])
			}
			if _, ok := low["arg"]; ok {
				t.Errorf("positional arguments %v: the command goes in kwarg cmd", low["arg"])
			}
			kw, _ := low["kwarg"].(map[string]any)
			if got := slices.Sorted(maps.Keys(kw)); !reflect.DeepEqual(got, []string{"clean_env", "cmd", "cwd", "env", "python_shell", "reset_system_locale"}) {
				t.Errorf("kwarg keys = %q", got)
			}
			for k, want := range map[string]any{"cmd": tt.wantCmd, "clean_env": true, "python_shell": false, "reset_system_locale": false, "cwd": "/"} {
				if kw[k] != want {
					t.Errorf("kwarg %s = %#v, want %#v", k, kw[k], want)
				}
			}
			env := wantEnv(req, tt.wantPath)
			if got := stringMap(t, kw["env"]); !reflect.DeepEqual(got, env) {
				t.Errorf("kwarg env = %q, want %q", got, env)
			}

			// What the minion made of it, by Salt's rules.
			if _, ok := call.Runs["web10"]; ok || len(call.Runs) != 1 {
				t.Errorf("cmd.run_bg ran on %v, want web1 alone", slices.Sorted(maps.Keys(call.Runs)))
			}
			run := call.Runs["web1"]
			wantArgv := []string{tt.wrapper}
			if tt.wrapper == "" {
				wantArgv = []string{"saltpeter-wrapper"}
			}
			if !reflect.DeepEqual(run.Argv, wantArgv) {
				t.Errorf("the minion runs %q, want %q", run.Argv, wantArgv)
			}
			if !reflect.DeepEqual(run.Env, env) {
				t.Errorf("the minion's process gets the environment %q, want exactly %q", run.Env, env)
			}

			token := req.Env[wire.EnvToken]
			if n := strings.Count(string(call.Body), token); n != 1 {
				t.Errorf("the token appears %d times in the request, want once (in env)", n)
			}
			if want := fmt.Sprintf("pid=%d", run.PID); !strings.Contains(res.Detail, want) || !strings.Contains(res.Detail, call.JID) {
				t.Errorf("Detail = %q, want the pid (%s) and the salt job (%s)", res.Detail, want, call.JID)
			}
			if strings.Contains(res.Detail, token) {
				t.Errorf("Detail holds the token: %q", res.Detail)
			}
		})
	}
}

func stringMap(t *testing.T, v any) map[string]string {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%v is not an object", v)
	}
	out := map[string]string{}
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("%s=%v is not a string", k, v)
		}
		out[k] = s
	}
	return out
}

// TestDispatchRunsTheWrapper: with the stand-in minion running the
// command on this machine, the wrapper (at a path with a space) starts
// with exactly the dispatch environment and PATH, no argument, and no
// token on its command line. Both protocols start alike.
func TestDispatchRunsTheWrapper(t *testing.T) {
	for _, protocol := range []int{wire.ProtocolV2, wire.ProtocolV1} {
		t.Run(fmt.Sprintf("protocol %d", protocol), func(t *testing.T) {
			s := salttest.Start(t, salttest.Config{Exec: true, Minions: []salttest.Minion{{ID: "web1"}}})
			tgt, _ := configured(t, s, nil)
			wrapper, records := recordingWrapper(t)
			req := request("j", "run-1", "web1", args("web1", ""))
			req.WrapperPath = wrapper
			req.Protocol = protocol
			if protocol == wire.ProtocolV1 {
				req.Env[wire.EnvCommand] = `echo 'hello world' | tr a-z A-Z`
				req.Env[wire.EnvCwd] = "/"
			}
			res, err := tgt.Dispatch(ctx(t), req)
			if err != nil {
				t.Fatalf("Dispatch: %v", err)
			}
			run := lastRunBg(t, s).Runs["web1"]
			if !strings.Contains(res.Detail, fmt.Sprintf("pid=%d", run.PID)) {
				t.Errorf("Detail = %q, want pid=%d", res.Detail, run.PID)
			}
			s.AwaitExit(t, run.PID)

			env := readEnviron(t, filepath.Join(records, "environ"))
			if want := wantEnv(req, defaultPath); !reflect.DeepEqual(env, want) {
				t.Errorf("the wrapper's environment is %q, want exactly %q", env, want)
			}
			argv := strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(records, "cmdline")), "\x00"), "\x00")
			// The kernel runs a "#!/bin/sh" script as "/bin/sh script".
			if len(argv) != 2 || argv[1] != wrapper {
				t.Errorf("the wrapper's command line is %q, want %s alone", argv, wrapper)
			}
			for _, a := range argv {
				if strings.Contains(a, req.Env[wire.EnvToken]) {
					t.Error("the token is on the wrapper's command line")
				}
			}
		})
	}
}

// recordingWrapper writes a stand-in wrapper, at a path with a space,
// that records its environment and command line in records.
func recordingWrapper(t *testing.T) (path, records string) {
	t.Helper()
	cp, err := exec.LookPath("cp")
	if err != nil {
		t.Skipf("the recording wrapper needs cp: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "salt peter")
	records = filepath.Join(dir, "records")
	if err := os.MkdirAll(records, 0o755); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "fake wrapper")
	script := fmt.Sprintf("#!/bin/sh\n%s /proc/$$/environ %s\n%s /proc/$$/cmdline %s\n",
		shq(cp), shq(filepath.Join(records, "environ")), shq(cp), shq(filepath.Join(records, "cmdline")))
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, records
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("the wrapper's record: %v", err)
	}
	return string(b)
}

func readEnviron(t *testing.T, p string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, kv := range strings.Split(readFile(t, p), "\x00") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := env[k]; dup {
			t.Errorf("the wrapper got %s twice", k)
		}
		env[k] = v
	}
	return env
}

// TestDispatchMissingWrapper: a wrapper the minion cannot run is an error
// (not_started, not unreachable) that names it and says why, without the
// token Salt's own message quotes.
func TestDispatchMissingWrapper(t *testing.T) {
	s := salttest.Start(t, salttest.Config{Exec: true, Minions: []salttest.Minion{{ID: "web1"}}})
	tgt, _ := configured(t, s, nil)
	req := request("j", "run-1", "web1", args("web1", ""))
	req.WrapperPath = filepath.Join(t.TempDir(), "no-such-wrapper")
	_, err := tgt.Dispatch(ctx(t), req)
	mustContain(t, "Dispatch", err, req.WrapperPath, "No such file or directory", "web1", "cmd.run_bg")
	if errors.Is(err, target.ErrUnreachable) {
		t.Errorf("a missing wrapper is ErrUnreachable: %v", err)
	}
	token := req.Env[wire.EnvToken]
	if err != nil && strings.Contains(err.Error(), token) {
		t.Errorf("the error holds the token: %v", err)
	}
	// The test means something only if Salt's return quoted it.
	if f := lastRunBg(t, s).Runs["web1"].Failure; !strings.Contains(f, token) {
		t.Fatalf("the stand-in's failure does not quote the environment, so the test proves nothing: %q", f)
	}
}

// TestDispatchUnknownMinion: a minion the master has no key for is
// unreachable, whether salt-api answers {} (nothing matched, nothing
// sent) or, as a master of syndics does, publishes anyway with no
// expected minion.
func TestDispatchUnknownMinion(t *testing.T) {
	for _, syndic := range []bool{false, true} {
		t.Run(fmt.Sprintf("syndic %v", syndic), func(t *testing.T) {
			s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web1"}}})
			tgt, _ := configured(t, s, nil)
			if syndic {
				s.FailNext("/", 200, "application/json", `{"return": [{"jid": "20260101000000000001", "minions": []}]}`)
			}
			_, err := tgt.Dispatch(ctx(t), request("j", "run-1", "ghost", args("*", "")))
			if !errors.Is(err, target.ErrUnreachable) {
				t.Fatalf("Dispatch to an unknown minion: %v, want ErrUnreachable", err)
			}
			mustContain(t, "Dispatch", err, "ghost", "no minion")
		})
	}
}

// TestDispatchReturns: what the minion returned decides: a pid is a
// start, an error string or anything else is a failure with its text.
func TestDispatchReturns(t *testing.T) {
	tests := []struct {
		name     string
		ret      string // the minion's return, as JSON
		wantErr  []string
		wantNote string
	}{
		{"pid", `{"pid": 4242}`, nil, "pid=4242"},
		{"error string", `"ERROR: Specified cwd '/' either not absolute or does not exist"`, []string{"Specified cwd"}, ""},
		{"no pid", `{"retcode": 1}`, []string{"unexpected return", "retcode"}, ""},
		{"a list", `[1, 2]`, []string{"unexpected return"}, ""},
		{"the token in an error", `"ERROR: the wrapper said SP_TOKEN=sp-token-run-1-0123456789abcdef is bad"`, []string{"SP_TOKEN=[redacted] is bad"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web1"}}})
			tgt, _ := configured(t, s, nil)
			// The real minion's return is replaced by the test's.
			s.FailNext("/jobs/", 200, "application/json", `{"info": [{}], "return": [{"web1": `+tt.ret+`}]}`)
			res, err := tgt.Dispatch(ctx(t), request("j", "run-1", "web1", args("web1", "")))
			if tt.wantErr == nil {
				if err != nil || !strings.Contains(res.Detail, tt.wantNote) {
					t.Fatalf("Dispatch = %q, %v; want %q in the detail", res.Detail, err, tt.wantNote)
				}
				return
			}
			mustContain(t, "Dispatch", err, tt.wantErr...)
			if err != nil && strings.Contains(err.Error(), "0123456789abcdef") {
				t.Errorf("the error holds the token: %v", err)
			}
			if errors.Is(err, target.ErrUnreachable) {
				t.Errorf("a minion that returned is ErrUnreachable: %v", err)
			}
		})
	}
}

// TestDispatchCancelled: a cancelled context ends a Dispatch that awaits
// the minion's return, with context.Canceled.
func TestDispatchCancelled(t *testing.T) {
	s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web1", ReturnAfterPolls: 1 << 30}}})
	tgt, _ := configured(t, s, map[string]any{"return_timeout": "10m"})
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	req := request("j", "run-1", "web1", args("web1", ""))
	done := make(chan error, 1)
	go func() {
		_, err := tgt.Dispatch(c, req)
		done <- err
	}()
	s.AwaitCalls(t, 1) // cmd.run_bg is out
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dispatch after cancel: %v, want context.Canceled", err)
	}
	if strings.Contains(err.Error(), req.Env[wire.EnvToken]) {
		t.Errorf("the error holds the token: %v", err)
	}
}

// TestDispatchConcurrent: concurrent Dispatches each send their own
// environment.
func TestDispatchConcurrent(t *testing.T) {
	s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web1"}, {ID: "web2"}}})
	tgt, _ := configured(t, s, nil)
	const n = 8
	reqs := make([]struct {
		req    target.DispatchRequest
		detail string
		err    error
	}, n)
	var wg sync.WaitGroup
	for i := range reqs {
		reqs[i].req = request("j", fmt.Sprintf("run-%d", i), fmt.Sprintf("web%d", 1+i%2), args("web*", ""))
		wg.Go(func() {
			res, err := tgt.Dispatch(ctx(t), reqs[i].req)
			reqs[i].detail, reqs[i].err = res.Detail, err
		})
	}
	wg.Wait()
	byRun := map[string]salttest.Call{}
	for _, c := range s.Calls() {
		kw, _ := c.Lowstate["kwarg"].(map[string]any)
		env, _ := kw["env"].(map[string]any)
		run, _ := env[wire.EnvJobInstance].(string)
		byRun[run] = c
	}
	for _, r := range reqs {
		if r.err != nil {
			t.Errorf("Dispatch %s: %v", r.req.RunID, r.err)
			continue
		}
		c, ok := byRun[r.req.RunID]
		if !ok {
			t.Errorf("no cmd.run_bg for %s", r.req.RunID)
			continue
		}
		run := c.Runs[r.req.Machine]
		if run.Env[wire.EnvToken] != r.req.Env[wire.EnvToken] {
			t.Errorf("%s: the minion got another dispatch's token", r.req.RunID)
		}
		if !strings.Contains(r.detail, fmt.Sprintf("pid=%d", run.PID)) {
			t.Errorf("%s: Detail %q is not its own wrapper's (pid %d)", r.req.RunID, r.detail, run.PID)
		}
	}
}

// TestDispatchBadRequests: what Dispatch refuses before asking Salt.
func TestDispatchBadRequests(t *testing.T) {
	s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web1"}}})
	tgt, _ := configured(t, s, nil)
	tests := []struct {
		name   string
		change func(*target.DispatchRequest)
		want   string
	}{
		{"bad target block", func(r *target.DispatchRequest) { r.Args = []byte(`{"hosts":["web1"]}`) }, "unknown argument"},
		{"no machine", func(r *target.DispatchRequest) { r.Machine = "" }, "no machine"},
		{"unknown protocol", func(r *target.DispatchRequest) { r.Protocol = 7 }, "protocol 7"},
		{"variable with =", func(r *target.DispatchRequest) { r.Env["A=B"] = "x" }, "invalid dispatch variable"},
		{"value with NUL", func(r *target.DispatchRequest) { r.Env["A"] = "x\x00y" }, "invalid dispatch variable"},
	}
	for _, tt := range tests {
		req := request("j", "run-1", "web1", args("web1", ""))
		tt.change(&req)
		_, err := tgt.Dispatch(ctx(t), req)
		mustContain(t, tt.name, err, tt.want)
	}
	if n := len(s.Calls()); n != 0 {
		t.Errorf("%d commands reached Salt, want none", n)
	}
}

// TestNeverLogsSecrets: neither the password, nor a token salt-api hands
// out, nor the dispatch token reaches the log, through logins, a
// re-login, dispatches and a failed one.
func TestNeverLogsSecrets(t *testing.T) {
	s := salttest.Start(t, salttest.Config{Exec: true, Password: "pw-4f1c9a", Minions: []salttest.Minion{{ID: "web1"}}})
	tgt, logs := configured(t, s, nil)
	req := request("j", "run-1", "web1", args("web1", ""))
	req.WrapperPath = "/bin/true"
	if _, err := tgt.Dispatch(ctx(t), req); err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	s.ExpireTokens()
	bad := request("j", "run-2", "web1", args("web1", ""))
	bad.WrapperPath = "/no/such/wrapper"
	if _, err := tgt.Dispatch(ctx(t), bad); err == nil {
		t.Fatal("Dispatch of a missing wrapper succeeded")
	}
	var tokens []string
	for _, c := range s.Calls() {
		tokens = append(tokens, c.Token)
	}
	out := logs.String()
	if !strings.Contains(out, "wrapper started through salt") || s.Logins() != 2 {
		t.Fatalf("the test did not go as meant (logins %d); log:\n%s", s.Logins(), out)
	}
	for name, secret := range map[string]string{
		"password": "pw-4f1c9a", "dispatch token": req.Env[wire.EnvToken], "other dispatch token": bad.Env[wire.EnvToken],
		"salt-api token 1": tokens[0], "salt-api token 2": tokens[len(tokens)-1],
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds the %s", name)
		}
	}
}
