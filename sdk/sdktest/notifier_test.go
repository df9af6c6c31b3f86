package sdktest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
)

// inbox is the receiver of memNotifier: what it accepted, and a channel
// closed when a delivery reaches its hanging mode.
type inbox struct {
	mu      sync.Mutex
	got     []sdktest.Delivery
	reached chan struct{}
	once    sync.Once
}

func (b *inbox) received(*testing.T) []sdktest.Delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]sdktest.Delivery(nil), b.got...)
}

// memNotifier delivers to an inbox. Config: {"mode": "ok" | "fail" |
// "refuse" | "hang"}. broken names a fault to plant, for checking that
// the suite catches it.
type memNotifier struct {
	box    *inbox
	broken string
	mu     sync.Mutex
	mode   string
}

func (m *memNotifier) Configure(_ context.Context, config []byte) error {
	var c struct {
		Mode string `json:"mode"`
	}
	dec := json.NewDecoder(bytes.NewReader(config))
	if m.broken != "accepts unknown keys" {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(&c); err != nil {
		return fmt.Errorf("mem notifier config: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mode = c.Mode
	return nil
}

func (m *memNotifier) Notify(ctx context.Context, ev notifier.Event) error {
	m.mu.Lock()
	mode := m.mode
	m.mu.Unlock()
	if m.broken != "ignores its context" {
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	switch mode {
	case "fail":
		if m.broken == "calls every failure permanent" {
			return notifier.Permanent(errors.New("503 Service Unavailable"))
		}
		return errors.New("503 Service Unavailable")
	case "refuse":
		return notifier.Permanent(errors.New("404 Not Found"))
	case "hang":
		m.box.once.Do(func() { close(m.box.reached) })
		if m.broken == "ignores its context" {
			select {}
		}
		<-ctx.Done()
		return fmt.Errorf("deliver %s: %w", ev.ID, ctx.Err())
	}
	if m.broken == "loses the kind" {
		ev.Kind = ""
	}
	if m.broken != "delivers nothing" {
		m.box.mu.Lock()
		m.box.got = append(m.box.got, sdktest.Delivery{ID: ev.ID, Kind: ev.Kind})
		m.box.mu.Unlock()
	}
	return nil
}

func runSuite(t *testing.T, broken string) {
	box := &inbox{reached: make(chan struct{})}
	sdktest.TestNotifier(t, func(*testing.T) notifier.Notifier { return &memNotifier{box: box, broken: broken} },
		sdktest.NotifierFixture{
			Config:          []byte(`{"mode":"ok"}`),
			FailingConfig:   []byte(`{"mode":"fail"}`),
			PermanentConfig: []byte(`{"mode":"refuse"}`),
			Hanging: func(*testing.T) ([]byte, <-chan struct{}) {
				return []byte(`{"mode":"hang"}`), box.reached
			},
			Received: box.received,
		})
}

func TestNotifierSuitePassesAGoodNotifier(t *testing.T) {
	runSuite(t, "")
}

// envBroken makes TestBrokenNotifier run the suite on a notifier with
// that fault, in a subprocess of TestNotifierSuiteCatchesFaults.
const envBroken = "SDKTEST_BROKEN_NOTIFIER"

func TestBrokenNotifier(t *testing.T) {
	broken := os.Getenv(envBroken)
	if broken == "" {
		t.Skip("run by TestNotifierSuiteCatchesFaults")
	}
	runSuite(t, broken)
}

// TestNotifierSuiteCatchesFaults: the suite fails a notifier with each
// fault, saying what is wrong.
func TestNotifierSuiteCatchesFaults(t *testing.T) {
	tests := []struct{ broken, want string }{
		{"accepts unknown keys", "Configure accepts an unknown key"},
		{"delivers nothing", "the receiver has not got it"},
		{"loses the kind", `arrived as kind ""`},
		{"calls every failure permanent", "is Permanent, so the core would not retry it"},
		{"ignores its context", "did not return within"},
	}
	for _, tt := range tests {
		t.Run(tt.broken, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestBrokenNotifier$", "-test.v")
			cmd.Env = append(os.Environ(), envBroken+"="+tt.broken)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a notifier that %s:\n%s", tt.broken, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("the suite failed a notifier that %s without saying %q:\n%s", tt.broken, tt.want, out)
			}
		})
	}
}
