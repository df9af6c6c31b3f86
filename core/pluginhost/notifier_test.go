package pluginhost

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/plugins/builtin"
	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
)

// fakeNotifier is a third-party notifier plugin for the tests.
//
// Config: {"inbox": DIR, "crash_once": PATH}. Notify appends the event's
// id and its process's pid to DIR/ID; then, when PATH exists, it removes
// PATH and kills its own process before answering: a delivery made by a
// plugin that died.
type fakeNotifier struct {
	log hclog.Logger
	mu  sync.Mutex
	cfg struct {
		Inbox     string `json:"inbox"`
		CrashOnce string `json:"crash_once"`
	}
}

func (f *fakeNotifier) Configure(_ context.Context, config []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := json.Unmarshal(config, &f.cfg); err != nil {
		return fmt.Errorf("fake notifier config: %w", err)
	}
	if f.cfg.Inbox == "" {
		return fmt.Errorf("fake notifier config: inbox is required")
	}
	return nil
}

func (f *fakeNotifier) Notify(_ context.Context, ev notifier.Event) error {
	f.mu.Lock()
	cfg := f.cfg
	f.mu.Unlock()
	file, err := os.OpenFile(filepath.Join(cfg.Inbox, ev.ID), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(file, "%s pid=%d\n", ev.ID, os.Getpid())
	if err := file.Close(); err != nil {
		return err
	}
	if cfg.CrashOnce != "" && os.Remove(cfg.CrashOnce) == nil {
		f.log.Warn("crashing as asked, the event delivered")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return nil
}

// hook is a webhook endpoint that keeps the events it got.
type hook struct {
	*httptest.Server
	code int
	mu   sync.Mutex
	got  []notifier.Event
}

func newHook(t *testing.T, code int) *hook {
	t.Helper()
	h := &hook{code: code}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev notifier.Event
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &ev); err != nil || r.Header.Get("X-Saltpeter-Event-Id") != ev.ID {
			http.Error(w, "not an event", http.StatusBadRequest)
			return
		}
		if h.code/100 == 2 {
			h.mu.Lock()
			h.got = append(h.got, ev)
			h.mu.Unlock()
		}
		w.WriteHeader(h.code)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) events() []notifier.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]notifier.Event(nil), h.got...)
}

func (h *hook) config() []byte { return []byte(fmt.Sprintf(`{"url": %q}`, h.URL)) }

func notifierLaunches(h *Host, name string) int {
	h.mu.Lock()
	m := h.plugins[key{"notifier", name}]
	h.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.launches
}

// newNotifierHost returns a host with these notifier blocks, its plugins
// this test binary.
func newNotifierHost(t *testing.T, plugins []config.Plugin, blocks ...config.Notifier) (*Host, *logSink) {
	t.Helper()
	sink := newLogSink()
	h, err := New(Config{
		Logger:    hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Trace, Output: sink}),
		Plugins:   plugins,
		Notifiers: blocks,
		Env:       []string{envPlugin + "=1"},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h, sink
}

func event(id string) notifier.Event {
	return notifier.Event{ID: id, Kind: notifier.EventFailure, Job: "j", RunID: "r1", Status: "failed",
		At: time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC), Attempt: 1}
}

// The built-in webhook notifier, served by a real plugin subprocess and
// reached through Host.Notifier, passes the notifier conformance suite.
func TestWebhookConformanceAsSubprocess(t *testing.T) {
	ok, failing, refusing := newHook(t, http.StatusOK), newHook(t, http.StatusBadGateway), newHook(t, http.StatusGone)
	sdktest.TestNotifier(t, func(t *testing.T) notifier.Notifier {
		h, _ := newNotifierHost(t, nil, config.Notifier{Name: "ops", Plugin: "webhook", Config: ok.config()})
		n, err := h.Notifier(ctx(t), "ops")
		if err != nil {
			t.Fatalf("Notifier(ops): %v", err)
		}
		return n
	}, sdktest.NotifierFixture{
		Config: ok.config(),
		Received: func(*testing.T) []sdktest.Delivery {
			var ds []sdktest.Delivery
			for _, ev := range ok.events() {
				ds = append(ds, sdktest.Delivery{ID: ev.ID, Kind: ev.Kind})
			}
			return ds
		},
		FailingConfig:   failing.config(),
		PermanentConfig: refusing.config(),
		Hanging: func(t *testing.T) ([]byte, <-chan struct{}) {
			reached := make(chan struct{})
			var once sync.Once
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				once.Do(func() { close(reached) })
				<-r.Context().Done()
			}))
			t.Cleanup(func() { s.CloseClientConnections(); s.Close() })
			return []byte(fmt.Sprintf(`{"url": %q, "timeout": "1h"}`, s.URL)), reached
		},
	})
}

// TestNotifierBlocks: each notifier block is its own process, configured
// with its own block; a third party's plugin is the program its plugin
// block names; a plugin's permanent refusal reaches the core as such,
// without a restart.
func TestNotifierBlocks(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ops, dev, gone := newHook(t, http.StatusOK), newHook(t, http.StatusOK), newHook(t, http.StatusNotFound)
	inbox := t.TempDir()
	h, sink := newNotifierHost(t,
		[]config.Plugin{{Kind: "notifier", Name: "pager", Path: exe}},
		config.Notifier{Name: "ops", Plugin: "webhook", Config: ops.config()},
		config.Notifier{Name: "dev", Plugin: "webhook", Config: dev.config()},
		config.Notifier{Name: "gone", Plugin: "webhook", Config: gone.config()},
		config.Notifier{Name: "pager", Plugin: "pager", Config: []byte(fmt.Sprintf(`{"inbox": %q}`, inbox))},
	)
	pids := map[int]string{}
	for _, name := range []string{"ops", "dev", "pager"} {
		n, err := h.Notifier(ctx(t), name)
		if err != nil {
			t.Fatalf("Notifier(%s): %v", name, err)
		}
		if err := n.Notify(ctx(t), event("to-"+name)); err != nil {
			t.Fatalf("Notify through %s: %v", name, err)
		}
		pid, ok := h.PID("notifier", name)
		if !ok {
			t.Fatalf("notifier %s has no process", name)
		}
		if other, dup := pids[pid]; dup {
			t.Errorf("notifiers %s and %s share the process %d", other, name, pid)
		}
		pids[pid] = name
	}
	for hk, want := range map[*hook]string{ops: "to-ops", dev: "to-dev"} {
		if got := hk.events(); len(got) != 1 || got[0].ID != want {
			t.Errorf("a webhook got %+v, want %s only", got, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(inbox, "to-pager")); err != nil || !strings.HasPrefix(string(b), "to-pager pid=") {
		t.Errorf("the third party's notifier delivered %q (%v)", b, err)
	}
	sink.await(t, "host.plugin.notifier.dev", "plugin ready")

	n, err := h.Notifier(ctx(t), "gone")
	if err != nil {
		t.Fatal(err)
	}
	err = n.Notify(ctx(t), event("e-gone"))
	if err == nil || !notifier.IsPermanent(err) || !strings.Contains(err.Error(), "404") {
		t.Errorf("Notify to a 404 through the plugin = %v, want a permanent error", err)
	}
	if got := notifierLaunches(h, "gone"); got != 1 {
		t.Errorf("a permanent refusal restarted the plugin: %d launches", got)
	}

	if _, err := h.Notifier(ctx(t), "nope"); err == nil || !strings.Contains(err.Error(), `no notifier "nope"`) || !notifier.IsPermanent(err) {
		t.Errorf("Notifier(nope) = %v", err)
	}
	if _, err := h.Target(ctx(t), "ops"); err == nil {
		t.Error("a notifier block is reachable as a target")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	for pid := range pids {
		awaitGone(t, pid)
	}
}

// TestNotifyRetriedWhenPluginDies: a plugin that dies during Notify is
// started again and the Notify retried once, so the call succeeds; the
// first process had delivered already, so the event arrives twice, with
// one id, which is what receivers de-duplicate by.
func TestNotifyRetriedWhenPluginDies(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	inbox, flag := t.TempDir(), filepath.Join(t.TempDir(), "crash")
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h, sink := newNotifierHost(t, []config.Plugin{{Kind: "notifier", Name: "pager", Path: exe}},
		config.Notifier{Name: "oncall", Plugin: "pager", Config: []byte(fmt.Sprintf(`{"inbox": %q, "crash_once": %q}`, inbox, flag))})
	n, err := h.Notifier(ctx(t), "oncall")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := h.PID("notifier", "oncall")
	if err := n.Notify(ctx(t), event("e-1")); err != nil {
		t.Fatalf("Notify across the plugin's death: %v", err)
	}
	if _, err := os.Stat(flag); !os.IsNotExist(err) {
		t.Fatal("the plugin never crashed: the test proves nothing")
	}
	if got := notifierLaunches(h, "oncall"); got != 2 {
		t.Errorf("launches = %d, want 2", got)
	}
	b, err := os.ReadFile(filepath.Join(inbox, "e-1"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	second, _ := h.PID("notifier", "oncall")
	want := []string{fmt.Sprintf("e-1 pid=%d", first), fmt.Sprintf("e-1 pid=%d", second)}
	if !slices.Equal(lines, want) || first == second {
		t.Errorf("deliveries %q, want %q", lines, want)
	}
	sink.await(t, "may have been delivered twice", "event_id=e-1")
	awaitGone(t, first)
}

func TestNotifierBlockErrors(t *testing.T) {
	tests := []struct {
		name    string
		plugins []config.Plugin
		blocks  []config.Notifier
		want    string
	}{
		{"unknown plugin", nil, []config.Notifier{{Name: "ops", Plugin: "pager"}}, `plugin "pager" is neither built in`},
		{"a target is not a notifier", []config.Plugin{{Kind: "target", Name: "pager", Path: "/x"}},
			[]config.Notifier{{Name: "ops", Plugin: "pager"}}, `plugin "pager" is neither built in`},
		{"twice", nil, []config.Notifier{{Name: "ops", Plugin: "webhook"}, {Name: "ops", Plugin: "slack"}}, "declared twice"},
		{"plugin without a path, not built in", []config.Plugin{{Kind: "notifier", Name: "pager"}}, nil, "has no path and is not built in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Plugins: tt.plugins, Notifiers: tt.blocks})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error with %q", err, tt.want)
			}
		})
	}
	t.Run("config refused", func(t *testing.T) {
		h, _ := newNotifierHost(t, nil, config.Notifier{Name: "ops", Plugin: "webhook", Config: []byte(`{"url": "ftp://x"}`)})
		_, err := h.Notifier(ctx(t), "ops")
		if err == nil || !strings.Contains(err.Error(), "want an https://") {
			t.Fatalf("Notifier(ops) = %v, want the plugin's config error", err)
		}
		if _, ok := h.PID("notifier", "ops"); ok {
			t.Error("a notifier that refused its config is left running")
		}
	})
}

// config cannot import plugins/builtin, so it keeps its own lists of the
// built-in plugins' names: they must be builtin's.
func TestConfigKnowsTheBuiltins(t *testing.T) {
	for kind, list := range map[string][]string{sdk.KindNotifier: config.BuiltinNotifiers, sdk.KindTarget: config.BuiltinTargets} {
		got := slices.Sorted(slices.Values(list))
		if want := builtin.Names(kind); !slices.Equal(got, want) {
			t.Errorf("config's built-in %s plugins %q, plugins/builtin's %q", kind, got, want)
		}
	}
}
