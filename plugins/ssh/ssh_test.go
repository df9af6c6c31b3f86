package sshtarget_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	sshtarget "github.com/saltpeter/saltpeter/plugins/ssh"
	"github.com/saltpeter/saltpeter/plugins/ssh/sshtest"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// newTarget returns a target configured with config, closed when the test
// ends.
func newTarget(t *testing.T, config []byte) *sshtarget.Target {
	t.Helper()
	tgt := sshtarget.New(hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testWriter{t}}))
	t.Cleanup(func() { _ = tgt.Close() })
	if config != nil {
		if err := tgt.Configure(context.Background(), config); err != nil {
			t.Fatalf("Configure(%s): %v", config, err)
		}
	}
	return tgt
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func conformanceFixture(t *testing.T, srv *sshtest.Server) sdktest.TargetFixture {
	t.Helper()
	host := srv.Hosts()[0]
	return sdktest.TargetFixture{
		Config:    srv.PluginConfig(nil),
		BadConfig: srv.PluginConfig(map[string]any{"password": "hunter2"}),
		Args:      hostsArgs(host),
		Machines:  []string{host},
		// The wrapper's standard input is the session carrying the
		// environment; the real wrapper's detached copy has /dev/null
		// (the wrapper's own tests check that).
		StdinDevNull: false,
		// The rest is the login environment sshd and the user's shell
		// startup files make (root's .bashrc may export anything); the
		// target sends no variable of its own process, over ssh it
		// cannot.
		AllowedEnv: nil,
	}
}

func hostsArgs(hosts ...string) []byte {
	b, _ := json.Marshal(map[string][]string{"hosts": hosts})
	return b
}

// envStdinAdapter stands in for the real wrapper's -env-stdin in the
// conformance suite, whose stand-in wrapper reads its dispatch
// environment from its process environment and wants no arguments. It
// makes each protocol 2 dispatch start the adapter script instead, which
// the ssh target runs as `exec ADAPTER -env-stdin`: the script checks that
// the token is on none of its command lines, reads the NUL-ended records
// from its standard input as the wrapper does, and execs the suite's
// wrapper with them in its environment, in the same process, so that
// what the suite sees (pid, session, descriptors, a SIGKILL to the
// session) is what the target did.
type envStdinAdapter struct {
	target.Target
	script string
}

const adapterScript = `#!/bin/bash
# sshtarget tests: the -env-stdin half of a real wrapper, then the suite's
# stand-in wrapper.
[ "$*" = "-env-stdin" ] || { echo "adapter: arguments $*, want -env-stdin" >&2; exit 2; }
while IFS= read -r -d '' kv || [ -n "$kv" ]; do
	case $kv in
	?*=*) export "$kv" || exit 2 ;;
	*) echo "adapter: malformed record" >&2; exit 2 ;;
	esac
done
for pid in $$ $PPID; do
	if tr '\0' ' ' </proc/$pid/cmdline | grep -qF -- "$SP_TOKEN"; then
		echo "adapter: SP_TOKEN is on the command line of process $pid" >&2
		exit 2
	fi
done
next=$SSHTEST_EXEC
unset SSHTEST_EXEC
exec "$next"
`

func newAdapter(t *testing.T, tgt target.Target) target.Target {
	t.Helper()
	path := filepath.Join(t.TempDir(), "env-stdin-adapter")
	if err := os.WriteFile(path, []byte(adapterScript), 0o755); err != nil {
		t.Fatal(err)
	}
	return envStdinAdapter{Target: tgt, script: path}
}

func (a envStdinAdapter) Dispatch(ctx context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	if req.Protocol != wire.ProtocolV2 {
		return a.Target.Dispatch(ctx, req)
	}
	env := map[string]string{"SSHTEST_EXEC": req.WrapperPath}
	for k, v := range req.Env {
		env[k] = v
	}
	req.Env, req.WrapperPath = env, a.script
	return a.Target.Dispatch(ctx, req)
}

func TestConformance(t *testing.T) {
	srv := sshtest.Start(t)
	sdktest.TestTarget(t, func(t *testing.T) target.Target {
		return newAdapter(t, newTarget(t, nil))
	}, conformanceFixture(t, srv))
}

func TestConformanceOverGRPC(t *testing.T) {
	srv := sshtest.Start(t)
	sdktest.TestTarget(t, func(t *testing.T) target.Target {
		return newAdapter(t, target.TestGRPCConn(t, newTarget(t, nil)))
	}, conformanceFixture(t, srv))
}

// standIn writes a stand-in wrapper that reads the dispatch environment
// from its standard input as the real one does (into the shell variables
// of the same names), then runs body.
func standIn(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stand-in wrapper")
	if err := os.WriteFile(path, []byte(standInScript(body)), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func standInScript(body string) string {
	return `#!/bin/bash
while IFS= read -r -d '' kv || [ -n "$kv" ]; do
	declare -- "$kv"
done
` + body + "\n"
}

func request(t *testing.T, machine, wrapper string) target.DispatchRequest {
	t.Helper()
	run := "run-" + randomHex(t, 4)
	return target.DispatchRequest{
		Job: "sshtest", RunID: run, Machine: machine, WrapperPath: wrapper, Protocol: wire.ProtocolV2,
		Env: map[string]string{
			wire.EnvWebSocketURL: "ws://core.example:8080/ws", wire.EnvJobName: "sshtest",
			wire.EnvJobInstance: run, wire.EnvMachineID: machine, wire.EnvToken: "token-" + randomHex(t, 16),
		},
	}
}

// TestDispatchToSeveralNamesOfOneServer: the names of one sshd are
// different machines, dispatched to at once, each with its own result
// and its own connection.
func TestDispatchToSeveralNamesOfOneServer(t *testing.T) {
	srv := sshtest.Start(t)
	hosts := srv.Hosts()
	if len(hosts) < 3 {
		t.Logf("no IPv6 loopback: %d names only", len(hosts))
	}
	tgt := newTarget(t, srv.PluginConfig(nil))
	machines, err := tgt.Resolve(ctx(t), target.ResolveRequest{Job: "sshtest", Args: hostsArgs(append(hosts, hosts[0])...)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(machines, hosts) {
		t.Fatalf("Resolve = %q, want %q", machines, hosts)
	}
	wrapper := standIn(t, `echo "`+wire.DetachedLine+` pid=$$ machine=$SP_MACHINE_ID via=${SSH_CONNECTION%% *}"`)
	results := make([]target.DispatchResult, len(machines))
	errs := make([]error, len(machines))
	var wg sync.WaitGroup
	for i, m := range machines {
		wg.Go(func() { results[i], errs[i] = tgt.Dispatch(ctx(t), request(t, m, wrapper)) })
	}
	wg.Wait()
	for i, m := range machines {
		if errs[i] != nil {
			t.Errorf("Dispatch to %s: %v", m, errs[i])
			continue
		}
		if want := "machine=" + m + " "; !strings.Contains(results[i].Detail, want) {
			t.Errorf("Dispatch to %s: Detail %q, want its own wrapper's line (%s)", m, results[i].Detail, want)
		}
	}
	if got := srv.Logins(); got != len(machines) {
		t.Errorf("sshd accepted %d logins for %d machines, want one each", got, len(machines))
	}
}

// TestPooledConnection: dispatches to a host share one connection; once
// it broke, the next dispatch dials again.
func TestPooledConnection(t *testing.T) {
	srv := sshtest.Start(t)
	tgt := newTarget(t, srv.PluginConfig(nil))
	wrapper := standIn(t, `echo "`+wire.DetachedLine+` pid=$$"`)
	machine := srv.Hosts()[0]
	dispatch := func() {
		t.Helper()
		if _, err := tgt.Dispatch(ctx(t), request(t, machine, wrapper)); err != nil {
			t.Fatalf("Dispatch: %v", err)
		}
	}
	dispatch()
	dispatch()
	dispatch()
	if got := srv.Logins(); got != 1 {
		t.Fatalf("three dispatches to one host logged in %d times, want once", got)
	}
	if n := srv.DropConnections(t); n != 1 {
		t.Fatalf("dropped %d connections, want the pooled one", n)
	}
	dispatch()
	if got := srv.Logins(); got != 2 {
		t.Errorf("after the connection broke, %d logins in all, want a second one", got)
	}
}

// TestUnreachable: what keeps the target from using a machine at all is
// target.ErrUnreachable, with the host and the cause in the message.
func TestUnreachable(t *testing.T) {
	srv := sshtest.Start(t)
	machine := srv.Hosts()[0]
	otherKey := newKeyFile(t)
	closedPort := closedPort(t)
	deadMachine := net.JoinHostPort("127.0.0.1", strconv.Itoa(closedPort))
	tests := []struct {
		name    string
		machine string
		config  map[string]any
		want    []string
	}{
		{"changed host key", machine,
			map[string]any{"known_hosts": srv.WriteKnownHosts(t, otherKey.pub)},
			[]string{"host key for " + machine + " does not match known_hosts", ssh.FingerprintSHA256(srv.HostKey)}},
		{"host not in known_hosts", machine,
			map[string]any{"known_hosts": writeKnownHosts(t, "[otherhost]:22", srv.HostKey)},
			[]string{"host " + machine + " is not in known_hosts"}},
		{"key refused", machine,
			map[string]any{"key_file": otherKey.path},
			[]string{"ssh " + srv.User + "@" + machine, "unable to authenticate"}},
		{"nobody listening", deadMachine,
			map[string]any{"known_hosts": writeKnownHosts(t, knownhosts.Normalize(deadMachine), srv.HostKey)},
			[]string{deadMachine, "connection refused"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tgt := newTarget(t, srv.PluginConfig(tc.config))
			_, err := tgt.Dispatch(ctx(t), request(t, tc.machine, "/bin/true"))
			if !errors.Is(err, target.ErrUnreachable) {
				t.Fatalf("Dispatch = %v, want an error wrapping ErrUnreachable", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// Over the plugin boundary too: the core tells error (255) from
	// not_started (254) by it.
	tgt := target.TestGRPCConn(t, newTarget(t, srv.PluginConfig(map[string]any{"known_hosts": srv.WriteKnownHosts(t, otherKey.pub)})))
	if _, err := tgt.Dispatch(ctx(t), request(t, machine, "/bin/true")); !errors.Is(err, target.ErrUnreachable) {
		t.Errorf("over gRPC: Dispatch = %v, want ErrUnreachable", err)
	}
}

// TestWrapperThatDoesNotStart: a machine that was reached but whose
// wrapper is missing or fails is not unreachable, and the error carries
// the remote stderr and exit status.
func TestWrapperThatDoesNotStart(t *testing.T) {
	srv := sshtest.Start(t)
	tgt := newTarget(t, srv.PluginConfig(nil))
	machine := srv.Hosts()[0]
	missing := filepath.Join(t.TempDir(), "no such dir", "saltpeter-wrapper")
	tests := []struct {
		name    string
		wrapper string
		want    []string
	}{
		{"missing path", missing, []string{missing, "exit status 127", "its stderr:", "not found"}},
		{"exits with a message", standIn(t, "echo 'cannot read SP_CA_FILE' >&2; exit 2"),
			[]string{"exited (exit status 2) without detaching", "its stderr: cannot read SP_CA_FILE"}},
		{"killed", standIn(t, "kill -9 $$"), []string{"killed by SIGKILL"}},
	}
	if _, err := exec.LookPath("saltpeter-wrapper"); err != nil {
		tests = append(tests, struct {
			name    string
			wrapper string
			want    []string
		}{"default not on PATH", "", []string{"saltpeter-wrapper", "exit status 127", "not found"}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := request(t, machine, tc.wrapper)
			_, err := tgt.Dispatch(ctx(t), req)
			if err == nil {
				t.Fatal("Dispatch succeeded")
			}
			if errors.Is(err, target.ErrUnreachable) {
				t.Errorf("error %q wraps ErrUnreachable: the machine was reached", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), req.Env[wire.EnvToken]) {
				t.Errorf("error holds the token: %q", err)
			}
		})
	}
}

// TestTokenNeverOnTheCommandLine asks sshd itself what the target asked
// it to run: with a ForceCommand, sshd runs a recorder instead and gives
// it the client's command in SSH_ORIGINAL_COMMAND. The command is the
// wrapper's quoted path and -env-stdin (or the protocol 1 launcher),
// never the token, which comes on standard input.
func TestTokenNeverOnTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	recorder := filepath.Join(dir, "recorder")
	// It answers as the command asked for would.
	script := fmt.Sprintf(`#!/bin/sh
printf '%%s' "$SSH_ORIGINAL_COMMAND" > %[1]s/command
cat > %[1]s/stdin
echo "saltpeter-ssh: pgid $$"
case $SSH_ORIGINAL_COMMAND in
*'sh -s') echo 'saltpeter: started protocol 1 wrapper pid=0' ;;
*) echo '%[2]s pid=0' ;;
esac
`, dir, wire.DetachedLine)
	if err := os.WriteFile(recorder, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	srv := sshtest.Start(t, "ForceCommand "+recorder)
	tgt := newTarget(t, srv.PluginConfig(nil))
	wrapper := "/opt/the wrapper's dir/saltpeter-wrapper"
	tests := []struct {
		protocol    int
		wantCommand string
		wantStdin   func(token string) string
	}{
		{wire.ProtocolV2, `exec /bin/sh -c 'echo "saltpeter-ssh: pgid $$" && exec "$0" -env-stdin' '/opt/the wrapper'\''s dir/saltpeter-wrapper'`,
			func(token string) string { return "\x00" + wire.EnvToken + "=" + token + "\x00" }},
		{wire.ProtocolV1, `exec /bin/sh -s`,
			func(token string) string { return "\nexport " + wire.EnvToken + "='" + token + "'\n" }},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("protocol %d", tc.protocol), func(t *testing.T) {
			req := request(t, srv.Hosts()[0], wrapper)
			req.Protocol = tc.protocol
			token := req.Env[wire.EnvToken]
			if _, err := tgt.Dispatch(ctx(t), req); err != nil {
				t.Fatalf("Dispatch: %v", err)
			}
			command, err := os.ReadFile(filepath.Join(dir, "command"))
			if err != nil {
				t.Fatal(err)
			}
			stdin, err := os.ReadFile(filepath.Join(dir, "stdin"))
			if err != nil {
				t.Fatal(err)
			}
			if string(command) != tc.wantCommand {
				t.Errorf("sshd was asked to run %q, want %q", command, tc.wantCommand)
			}
			if strings.Contains(string(command), token) {
				t.Error("the token is on the command line")
			}
			if !strings.Contains(string(stdin), tc.wantStdin(token)) {
				t.Errorf("standard input %q does not carry the token as %q", stdin, tc.wantStdin("…"))
			}
		})
	}
	if strings.Contains(srv.Log(), "token-") {
		t.Error("sshd's log shows a token")
	}
}

// TestProtocol1RefusesNamesShellsCannotExport: a protocol 1 wrapper's
// variables are exported by /bin/sh, so their names must be shell names;
// the error says which is not.
func TestProtocol1RefusesNamesShellsCannotExport(t *testing.T) {
	srv := sshtest.Start(t)
	tgt := newTarget(t, srv.PluginConfig(nil))
	req := request(t, srv.Hosts()[0], "/bin/true")
	req.Protocol = wire.ProtocolV1
	req.Env["JOB-VAR"] = "x"
	_, err := tgt.Dispatch(ctx(t), req)
	if err == nil || !strings.Contains(err.Error(), `"JOB-VAR" is not a shell variable name`) {
		t.Fatalf("Dispatch = %v, want the name refused", err)
	}
	if got := srv.Logins(); got != 0 {
		t.Errorf("a refused request still logged in (%d)", got)
	}
}

func TestConfigure(t *testing.T) {
	srv := sshtest.Start(t)
	locked := filepath.Join(t.TempDir(), "locked_key")
	writeLockedKey(t, locked)
	tests := []struct {
		name   string
		config string
		want   []string // "" accepts
	}{
		{"full", string(srv.PluginConfig(map[string]any{"deploy_wrapper": true, "port": 2222})), nil},
		{"default user", fmt.Sprintf(`{"key_file":%q,"known_hosts":%q}`, srv.KeyFile, srv.KnownHosts), nil},
		{"empty", `{}`, []string{"key_file is required", "known_hosts is required"}},
		{"null", `null`, []string{"key_file is required"}},
		{"unknown key", string(srv.PluginConfig(map[string]any{"password": "x"})), []string{"unknown setting \"password\"", "user, key_file, known_hosts"}},
		{"port out of range", string(srv.PluginConfig(map[string]any{"port": 70000})), []string{"port 70000 is not a TCP port"}},
		{"port as a string", string(srv.PluginConfig(map[string]any{"port": "22"})), []string{"port: want a number, not a string"}},
		{"deploy as a string", string(srv.PluginConfig(map[string]any{"deploy_wrapper": "yes"})), []string{"deploy_wrapper: want a bool"}},
		{"no such key file", string(srv.PluginConfig(map[string]any{"key_file": "/nonexistent/key"})), []string{"key_file: open /nonexistent/key"}},
		{"key with a passphrase", string(srv.PluginConfig(map[string]any{"key_file": locked})), []string{"protected by a passphrase"}},
		{"no such known_hosts", string(srv.PluginConfig(map[string]any{"known_hosts": "/nonexistent/kh"})), []string{"known_hosts: open /nonexistent/kh"}},
		{"not an object", `["user"]`, []string{"not a JSON object"}},
		{"two objects", `{} {}`, []string{"more than one JSON value"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := newTarget(t, nil).Configure(ctx(t), []byte(tc.config))
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Configure(%s): %v", tc.config, err)
			case tc.want == nil:
				return
			case err == nil:
				t.Fatalf("Configure(%s) accepted it", tc.config)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		args string
		want []string
		err  string
	}{
		{`{"hosts":["web1","web2:2222"]}`, []string{"web1", "web2:2222"}, ""},
		{`{"hosts":["b","a","b","[::1]:22","::1","a"]}`, []string{"b", "a", "[::1]:22", "::1"}, ""},
		{`{}`, nil, "hosts is required"},
		{``, nil, "hosts is required"},
		{`{"hosts":[]}`, nil, "hosts is empty"},
		{`{"hosts":"web1"}`, nil, "hosts: want a list"},
		{`{"hosts":[1]}`, nil, "hosts: want a string, not a number"},
		{`{"hosts":["web1"],"user":"x"}`, nil, `unknown setting "user"`},
		{`{"hosts":["web1:"]}`, nil, `hosts[0]: "web1:" is not a host or host:port`},
		{`{"hosts":["ok","web1:99999"]}`, nil, `hosts[1]: "web1:99999"`},
		{`{"hosts":["root@web1"]}`, nil, `"root@web1" is not a host`},
		{`{"hosts":["web 1"]}`, nil, `"web 1" is not a host`},
		{`{"hosts":[""]}`, nil, "an empty host"},
	}
	tgt := sshtarget.New(nil)
	for _, tc := range tests {
		got, err := tgt.Resolve(context.Background(), target.ResolveRequest{Job: "j", Args: []byte(tc.args)})
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Resolve(%s): %v", tc.args, err)
		case tc.err == "" && !slices.Equal(got, tc.want):
			t.Errorf("Resolve(%s) = %q, want %q", tc.args, got, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Resolve(%s) = %q, %v; want an error with %q", tc.args, got, err, tc.err)
		case tc.err != "" && !strings.Contains(err.Error(), "job j: ssh target block"):
			t.Errorf("Resolve(%s): error %q does not say where", tc.args, err)
		}
	}
}

type keyFile struct {
	path string
	pub  ssh.PublicKey
}

// newKeyFile writes a fresh ed25519 key nobody authorised.
func newKeyFile(t *testing.T) keyFile {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_other")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return keyFile{path: path, pub: sshPub}
}

func writeLockedKey(t *testing.T, path string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeKnownHosts(t *testing.T, pattern string, key ssh.PublicKey) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(path, []byte(knownhosts.Line([]string{pattern}, key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// closedPort is a loopback port nobody listens on, as far as one can
// tell.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestConnectionLostWhileStarting: a connection that ends while the
// wrapper has not said anything yet is the machine becoming unreachable,
// not a wrapper that failed.
func TestConnectionLostWhileStarting(t *testing.T) {
	srv := sshtest.Start(t)
	tgt := newTarget(t, srv.PluginConfig(nil))
	started := filepath.Join(t.TempDir(), "started")
	wrapper := standIn(t, ": > "+shellQuote(started)+"\nexec sleep 600")
	done := make(chan error, 1)
	go func() {
		_, err := tgt.Dispatch(ctx(t), request(t, srv.Hosts()[0], wrapper))
		done <- err
	}()
	awaitFile(t, started)
	if n := srv.DropConnections(t); n != 1 {
		t.Fatalf("dropped %d connections, want 1", n)
	}
	select {
	case err := <-done:
		if !errors.Is(err, target.ErrUnreachable) || !strings.Contains(err.Error(), "connection was lost") {
			t.Fatalf("Dispatch = %v, want ErrUnreachable and the connection lost", err)
		}
	case <-ctx(t).Done():
		t.Fatal("Dispatch did not return after its connection ended")
	}
}

// awaitFile waits for path to exist: a stand-in wrapper's sign of life.
func awaitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within 30s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// TestRealWrapper: the real saltpeter-wrapper, started over ssh with the
// environment on its standard input, detaches, and its detached copy has
// the dispatch environment, the token on no command line, and /dev/null
// for standard input.
func TestRealWrapper(t *testing.T) {
	srv := sshtest.Start(t)
	bin := filepath.Join(t.TempDir(), "saltpeter-wrapper")
	build := exec.Command("go", "build", "-o", bin, "github.com/saltpeter/saltpeter/wrapper/cmd/saltpeter-wrapper")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the wrapper: %v\n%s", err, out)
	}
	tgt := newTarget(t, srv.PluginConfig(nil))
	req := request(t, srv.Hosts()[0], bin)
	// Nobody listens there: the detached wrapper keeps trying until
	// it is killed below.
	req.Env[wire.EnvWebSocketURL] = fmt.Sprintf("ws://127.0.0.1:%d/ws", closedPort(t))
	res, err := tgt.Dispatch(ctx(t), req)
	if err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	pidText, ok := strings.CutPrefix(res.Detail, wire.DetachedLine+" pid=")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil {
		t.Fatalf("Detail %q is not the wrapper's detach line", res.Detail)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })

	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("the detached wrapper: %v", err)
	}
	env := strings.Split(string(environ), "\x00")
	for k, v := range req.Env {
		if !slices.Contains(env, k+"="+v) {
			t.Errorf("the detached wrapper lacks %s", k)
		}
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmdline), req.Env[wire.EnvToken]) {
		t.Error("the token is on the detached wrapper's command line")
	}
	if in, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", pid)); err != nil || in != os.DevNull {
		t.Errorf("the detached wrapper's stdin is %q (%v), want %s", in, err, os.DevNull)
	}
}

// TestChattyStartupFiles: lines the login shell's startup files print on
// a non-interactive session (bash reads .bashrc under sshd, zsh reads
// .zshenv) come before the pgid line and are skipped, up to a bound;
// more than that is a message saying what to quieten.
func TestChattyStartupFiles(t *testing.T) {
	srv := sshtest.Start(t)
	switch sh := loginShell(t, srv.User); filepath.Base(sh) {
	case "bash", "zsh":
	default:
		t.Skipf("login shell %s reads no startup file we can write for a non-interactive session", sh)
	}
	tgt := newTarget(t, srv.PluginConfig(nil))
	wrapper := standIn(t, `echo "`+wire.DetachedLine+` pid=$$"`)
	chat := func(lines int) {
		t.Helper()
		rc := fmt.Sprintf("i=0; while [ $i -lt %d ]; do echo \"welcome to the test host ($i)\"; i=$((i+1)); done\n", lines)
		for _, f := range []string{".bashrc", ".zshenv"} {
			if err := os.WriteFile(filepath.Join(srv.Home, f), []byte(rc), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		lines   int
		wantErr string
	}{
		{0, ""},
		{3, ""},
		{64, ""},
		{65, "printed more than 64 lines first (quieten the login shell's startup files"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d lines", tc.lines), func(t *testing.T) {
			chat(tc.lines)
			res, err := tgt.Dispatch(ctx(t), request(t, srv.Hosts()[0], wrapper))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Dispatch: %v", err)
			case tc.wantErr == "" && !strings.HasPrefix(res.Detail, wire.DetachedLine):
				t.Fatalf("Detail %q, want the wrapper's detach line", res.Detail)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Dispatch error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// loginShell is user's shell in /etc/passwd.
func loginShell(t *testing.T, user string) string {
	t.Helper()
	out, err := exec.Command("getent", "passwd", user).Output()
	if err != nil {
		t.Fatalf("getent passwd %s: %v", user, err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), ":")
	if len(f) < 7 {
		t.Fatalf("getent passwd %s: %q", user, out)
	}
	return f[6]
}
