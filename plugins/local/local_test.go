package local_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/plugins/local"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
	"github.com/saltpeter/saltpeter/sdk/target"
)

func fixture(t *testing.T) sdktest.TargetFixture {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return sdktest.TargetFixture{
		Config:       []byte("{}"),
		BadConfig:    []byte(`{"user":"root"}`),
		Args:         []byte("{}"),
		Machines:     []string{host},
		AllowedEnv:   []string{"PATH", "HOME", "LANG"},
		StdinDevNull: true,
	}
}

func newLocal(t *testing.T) *local.Target {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return local.New(hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: w}))
}

func TestConformance(t *testing.T) {
	// A variable of ours that must not reach the wrapper.
	t.Setenv("SALTPETER_LOCAL_TEST_LEAK", "leaked")
	sdktest.TestTarget(t, func(t *testing.T) target.Target { return newLocal(t) }, fixture(t))
}

func TestConformanceOverGRPC(t *testing.T) {
	t.Setenv("SALTPETER_LOCAL_TEST_LEAK", "leaked")
	sdktest.TestTarget(t, func(t *testing.T) target.Target { return target.TestGRPCConn(t, newLocal(t)) }, fixture(t))
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		config string
		want   string // "" accepts
	}{
		{"", ""},
		{"{}", ""},
		{" null ", ""},
		{`{"user":"root","port":22}`, "unknown setting port, user"},
		{`[1]`, "not a JSON object"},
	}
	for _, tt := range tests {
		err := newLocal(t).Configure(context.Background(), []byte(tt.config))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Configure(%q): %v", tt.config, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Configure(%q) = %v, want an error with %q", tt.config, err, tt.want)
		}
	}
}

func TestDispatchRefusesAnotherMachine(t *testing.T) {
	_, err := newLocal(t).Dispatch(context.Background(), target.DispatchRequest{Machine: "not-" + mustHost(t), Protocol: 2, WrapperPath: "/bin/true"})
	if err == nil || !strings.Contains(err.Error(), "not-"+mustHost(t)) {
		t.Fatalf("Dispatch to another machine = %v", err)
	}
}

func mustHost(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testWriter sends log lines to the test's log until the test ends: the
// plugin reaps the wrappers it started whenever they exit, and logs it,
// which may be after the test that started them.
type testWriter struct {
	mu    sync.Mutex
	t     *testing.T
	ended bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ended {
		w.t.Helper()
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.ended = true
	w.mu.Unlock()
}
