package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/plugins/builtin"
	"github.com/saltpeter/saltpeter/plugins/sqlite"
	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// The test binary is also the plugin, and a host to kill: TestMain picks
// its part from the environment.
const (
	// envPlugin makes the test binary serve plugins: the built-in one its
	// arguments name (`plugin KIND NAME`), else the fake target below.
	envPlugin = "PLUGINHOST_TEST_PLUGIN"
	// envHost makes it a host that starts the local plugin, prints
	// "pid=N" and waits for its stdin to close.
	envHost = "PLUGINHOST_TEST_HOST"
	// envNoPdeathsig makes that host start its plugin without Pdeathsig,
	// so only the plugin's own watch can end it.
	envNoPdeathsig = "PLUGINHOST_TEST_NO_PDEATHSIG"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(envPlugin) != "":
		if len(os.Args) == 4 && os.Args[1] == "plugin" {
			if err := builtin.Serve(os.Args[2], os.Args[3]); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Exit(0)
		}
		// One binary, three kinds: the host dispenses each by its kind.
		sdk.Serve("fake",
			sdk.WithTarget(func(l hclog.Logger) (target.Target, error) { return &fakeTarget{log: l}, nil }),
			sdk.WithStore(func(l hclog.Logger) (store.Store, error) { return &fakeStore{Store: memory.New(), log: l}, nil }),
			sdk.WithNotifier(func(l hclog.Logger) (notifier.Notifier, error) { return &fakeNotifier{log: l}, nil }))
		os.Exit(0)
	case os.Getenv(envHost) != "":
		if err := runHost(); err != nil {
			fmt.Fprintln(os.Stderr, "host:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHost is the host subprocess: it starts the built-in local target,
// prints the plugin's pid and waits to be killed.
func runHost() error {
	h, err := New(Config{
		Logger: hclog.New(&hclog.LoggerOptions{Name: "host", Output: os.Stderr, Level: hclog.Debug}),
		Env:    []string{envPlugin + "=1"},
	})
	if err != nil {
		return err
	}
	if os.Getenv(envNoPdeathsig) != "" {
		h.pdeathsig = 0
	}
	ctx := context.Background()
	tgt, err := h.Target(ctx, "local")
	if err != nil {
		return err
	}
	if _, err := tgt.Resolve(ctx, target.ResolveRequest{Job: "j", Args: []byte("{}")}); err != nil {
		return err
	}
	pid, ok := h.PID("target", "local")
	if !ok {
		return errors.New("no plugin pid")
	}
	fmt.Printf("pid=%d\n", pid)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return h.Close()
}

// fakeTarget is a third-party target plugin for the tests.
//
// Config: {"machines": [...], "fail": "text"}. Resolve returns the
// machines; CheckArgs refuses a block with a "bad" argument, appends the
// block to the file its "count" argument names, and with "block": true
// answers only when its context ends; Dispatch
// fails with "fail" when set, and when its args hold
// {"crash_once": PATH} and PATH exists, removes PATH and kills its own
// process mid-call.
type fakeTarget struct {
	log      hclog.Logger
	machines []string
	fail     string
}

func (f *fakeTarget) Configure(_ context.Context, config []byte) error {
	var c struct {
		Machines []string `json:"machines"`
		Fail     string   `json:"fail"`
	}
	if err := json.Unmarshal(config, &c); err != nil {
		return fmt.Errorf("fake target config: %w", err)
	}
	if len(c.Machines) == 0 {
		return errors.New("fake target config: machines: at least one is required")
	}
	f.machines, f.fail = c.Machines, c.Fail
	f.log.Info("fake target configured", "machines", c.Machines)
	return nil
}

func (f *fakeTarget) CheckArgs(ctx context.Context, args []byte) error {
	var a map[string]any
	if err := json.Unmarshal(args, &a); err != nil {
		return fmt.Errorf("fake target block: %w", err)
	}
	if p, ok := a["count"].(string); ok {
		if err := appendLine(p, string(args)); err != nil {
			return err
		}
	}
	if a["block"] == true {
		<-ctx.Done()
		return ctx.Err()
	}
	if v, ok := a["bad"]; ok {
		return fmt.Errorf("fake target block: bad = %v is not allowed", v)
	}
	return nil
}

func (f *fakeTarget) Resolve(context.Context, target.ResolveRequest) ([]string, error) {
	return f.machines, nil
}

func (f *fakeTarget) Dispatch(_ context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	var args struct {
		CrashOnce string `json:"crash_once"`
	}
	_ = json.Unmarshal(req.Args, &args)
	if args.CrashOnce != "" {
		if err := os.Remove(args.CrashOnce); err == nil {
			f.log.Warn("crashing as asked")
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	if f.fail != "" {
		return target.DispatchResult{}, errors.New(f.fail)
	}
	return target.DispatchResult{Detail: fmt.Sprintf("fake dispatched %s pid=%d", req.RunID, os.Getpid())}, nil
}

// fakeStore is a third-party store plugin for the tests: the memory
// store, or SQLite, with a config.
//
// Config: {"fail": "text"} makes Configure fail; {"sqlite": PATH} keeps
// the state in a SQLite file, so that it outlives the process. An
// AppendOutput whose chunk's stream is "crash_once" and whose data names
// an existing file removes the file and kills the plugin mid-call; a
// FireRun whose run's reason is "crash_once:PATH", an UpdateMachine
// whose update's reason is, and an AppendAudit whose entry's detail is, do
// the same once the run, update or entry is stored, before answering.
type fakeStore struct {
	store.Store
	log hclog.Logger
}

var _ store.Configurer = (*fakeStore)(nil)

func (f *fakeStore) Configure(ctx context.Context, config []byte) error {
	var c struct {
		Fail   string `json:"fail"`
		SQLite string `json:"sqlite"`
	}
	if err := json.Unmarshal(config, &c); err != nil {
		return fmt.Errorf("fake store config: %w", err)
	}
	if c.Fail != "" {
		return errors.New(c.Fail)
	}
	if c.SQLite != "" {
		s, err := sqlite.Open(ctx, sqlite.Options{Path: c.SQLite})
		if err != nil {
			return err
		}
		f.Store = s
	}
	return nil
}

func (f *fakeStore) FireRun(ctx context.Context, run store.Run) (bool, error) {
	ok, err := f.Store.FireRun(ctx, run)
	if path, crash := strings.CutPrefix(run.Reason, "crash_once:"); crash {
		if os.Remove(path) == nil {
			f.log.Warn("crashing as asked, the run stored")
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	return ok, err
}

func (f *fakeStore) UpdateMachine(ctx context.Context, runID, machine string, u store.MachineUpdate) error {
	err := f.Store.UpdateMachine(ctx, runID, machine, u)
	if u.Reason != nil {
		if path, crash := strings.CutPrefix(*u.Reason, "crash_once:"); crash && os.Remove(path) == nil {
			f.log.Warn("crashing as asked, the machine update stored")
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	return err
}

func (f *fakeStore) AppendAudit(ctx context.Context, e store.AuditEntry) (int64, error) {
	id, err := f.Store.AppendAudit(ctx, e)
	if path, crash := strings.CutPrefix(e.Detail, "crash_once:"); crash {
		if os.Remove(path) == nil {
			f.log.Warn("crashing as asked, the audit entry stored")
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	return id, err
}

func (f *fakeStore) AppendOutput(ctx context.Context, runID, machine string, c store.Chunk) (int64, error) {
	if c.Stream == "crash_once" {
		if err := os.Remove(string(c.Data)); err == nil {
			f.log.Warn("crashing as asked")
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	return f.Store.AppendOutput(ctx, runID, machine, c)
}

// awaitGone waits up to 10 s for pid to exit (gone, or a zombie nobody
// reaped yet).
func awaitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !exited(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running after 10s", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exited reports whether pid is gone or a zombie.
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ')' {
			return len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
		}
	}
	return false
}

// appendLine appends line to the file at path.
func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
