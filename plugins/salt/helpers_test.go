package salt_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/plugins/salt"
	"github.com/saltpeter/saltpeter/plugins/salt/salttest"
	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// logs is what a target logged, kept to be searched, and shown with the
// test's log.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newTarget returns an unconfigured salt target logging at trace level;
// its log is shown when the test fails.
func newTarget(t *testing.T) (*salt.Target, *logs) {
	t.Helper()
	l := &logs{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the target's log:\n%s", l.String())
		}
	})
	return salt.New(hclog.New(&hclog.LoggerOptions{Name: "salt", Level: hclog.Trace, Output: l, JSONFormat: true})), l
}

// config is the plugin config for s, with extra settings over it.
func config(t *testing.T, s *salttest.Server, extra map[string]any) []byte {
	t.Helper()
	c := map[string]any{
		"url":           s.URL,
		"username":      s.Username(),
		"password_file": s.PasswordFile(t),
	}
	if s.CAFile != "" {
		c["ca_file"] = s.CAFile
	}
	maps.Copy(c, extra)
	for k, v := range c {
		if v == nil {
			delete(c, k)
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// configured returns a salt target configured for s.
func configured(t *testing.T, s *salttest.Server, extra map[string]any) (*salt.Target, *logs) {
	t.Helper()
	tgt, l := newTarget(t)
	if err := tgt.Configure(ctx(t), config(t, s, extra)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return tgt, l
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func args(tgt, tgtType string) []byte {
	m := map[string]string{"tgt": tgt}
	if tgtType != "" {
		m["tgt_type"] = tgtType
	}
	b, _ := json.Marshal(m)
	return b
}

// request is a dispatch request whose values carry spaces, quotes and
// shell syntax, and a fresh token.
func request(job, run, machine string, targetArgs []byte) target.DispatchRequest {
	return target.DispatchRequest{
		Job:         job,
		RunID:       run,
		Machine:     machine,
		Args:        targetArgs,
		WrapperPath: "/usr/local/bin/saltpeter-wrapper",
		Protocol:    wire.ProtocolV2,
		Env: map[string]string{
			wire.EnvWebSocketURL:  "wss://core1.example:8443/ws",
			wire.EnvWebSocketURLs: "wss://core1.example:8443/ws wss://core2.example:8443/ws",
			wire.EnvJobName:       job + ` 's "name" $HOME ` + "`id`",
			wire.EnvJobInstance:   run,
			wire.EnvMachineID:     machine,
			wire.EnvToken:         "sp-token-" + run + "-0123456789abcdef",
		},
	}
}

// lastRunBg is the latest cmd.run_bg chunk the stand-in received.
func lastRunBg(t *testing.T, s *salttest.Server) salttest.Call {
	t.Helper()
	calls := s.Calls()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].Lowstate["fun"] == "cmd.run_bg" {
			return calls[i]
		}
	}
	t.Fatal("the stand-in received no cmd.run_bg")
	return salttest.Call{}
}

// wantEnv is the environment the wrapper must get: the dispatch one and
// PATH.
func wantEnv(req target.DispatchRequest, path string) map[string]string {
	env := maps.Clone(req.Env)
	if _, ok := env["PATH"]; !ok {
		env["PATH"] = path
	}
	return env
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func mustContain(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want one with %q", what, parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q lacks %q", what, err, p)
		}
	}
}

func resolveReq(job string, targetArgs []byte) target.ResolveRequest {
	return target.ResolveRequest{Job: job, Args: targetArgs}
}
