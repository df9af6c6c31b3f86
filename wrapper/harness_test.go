package wrapper

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/wire"
	"github.com/saltpeter/saltpeter/wrapper/proc"
)

// lockedBuffer collects a run's log, shown when its test fails.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(t *testing.T) hclog.Logger {
	t.Helper()
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("wrapper log:\n%s", buf.String())
		}
	})
	return hclog.New(&hclog.LoggerOptions{Name: "wrapper", Level: hclog.Debug, Output: buf})
}

func testConfig(core *fakeCore) Config {
	return Config{URLs: []string{core.url}, JobName: testJob, JobInstance: testInstance,
		Machine: testMachine, Token: testToken}
}

// testSettings are defaultSettings made quick and hermetic.
func testSettings(t *testing.T) settings {
	s := defaultSettings()
	s.spoolDir = t.TempDir()
	s.backoff = backoff{min: 5 * time.Millisecond, max: 50 * time.Millisecond}
	s.giveUp = 30 * time.Second
	s.handshake = 5 * time.Second
	s.writeTimeout = 5 * time.Second
	s.drain = 200 * time.Millisecond
	s.environ = func() []string { return []string{"PATH=/usr/bin:/bin", wire.EnvToken + "=" + testToken} }
	s.stopSignals = nil
	return s
}

// run is one wrapper run against a fake core.
type run struct {
	r    *runner
	done chan error
	mu   sync.Mutex
	opts *proc.Options // what the job was started with
}

// startRun runs the wrapper with j as the job (nil: the real proc.Start);
// tweak adjusts the settings first.
func startRun(t *testing.T, core *fakeCore, j job, tweak func(*settings)) *run {
	t.Helper()
	return startRunWith(t, testConfig(core), j, tweak)
}

// startRunWith is startRun with a config of the test's own.
func startRunWith(t *testing.T, cfg Config, j job, tweak func(*settings)) *run {
	t.Helper()
	set := testSettings(t)
	rn := &run{done: make(chan error, 1)}
	if j != nil {
		set.prepare = nil // a fake job has no use for it
		set.start = func(o proc.Options) (job, error) {
			rn.mu.Lock()
			rn.opts = &o
			rn.mu.Unlock()
			return j, nil
		}
	}
	if tweak != nil {
		tweak(&set)
	}
	r, err := newRunner(cfg, testLogger(t), set)
	if err != nil {
		t.Fatal(err)
	}
	rn.r = r
	ctx, cancel := context.WithCancel(context.Background())
	go func() { rn.done <- r.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-rn.done:
		case <-time.After(30 * time.Second):
			t.Error("wrapper did not stop after cancel")
		}
	})
	return rn
}

// wait waits for the run to end and returns its error.
func (rn *run) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-rn.done:
		rn.done <- err // for Cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("wrapper run did not end")
		return errors.New("unreachable")
	}
}

// mustSucceed waits for the run to end and fails the test on an error.
func (rn *run) mustSucceed(t *testing.T) {
	t.Helper()
	if err := rn.wait(t); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// write writes p to the fake job's pipe, failing the test on error.
func write(t *testing.T, w interface{ Write([]byte) (int, error) }, p []byte) {
	t.Helper()
	if _, err := w.Write(p); err != nil {
		t.Fatalf("job write: %v", err)
	}
}

// checkComplete compares the complete frame's retcode and reason.
func checkComplete(t *testing.T, f wire.Frame, retcode int, reason string) {
	t.Helper()
	if f.Retcode == nil || *f.Retcode != retcode || f.Reason != reason {
		got := -1
		if f.Retcode != nil {
			got = *f.Retcode
		}
		t.Errorf("complete: retcode %d reason %q, want %d %q", got, f.Reason, retcode, reason)
	}
}
