package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// receiver is a webhook endpoint that refuses (503) until told to accept,
// and records every request.
type receiver struct {
	mu       sync.Mutex
	accept   bool
	attempts []receivedEvent
	accepted []receivedEvent
	signed   bool // every request's signature checked out
	got      chan struct{}
}

type receivedEvent struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Job     string `json:"job"`
	RunID   string `json:"run_id"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Core    string `json:"core"`
	Attempt int    `json:"attempt"`
}

func newReceiver(t *testing.T, secret string) (*receiver, string) {
	t.Helper()
	rc := &receiver{signed: true, got: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		var ev receivedEvent
		jerr := json.Unmarshal(body, &ev)
		rc.mu.Lock()
		if r.Header.Get("X-Saltpeter-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) || jerr != nil {
			rc.signed = false
		}
		rc.attempts = append(rc.attempts, ev)
		ok := rc.accept
		if ok {
			rc.accepted = append(rc.accepted, ev)
		}
		rc.mu.Unlock()
		rc.got <- struct{}{}
		if !ok {
			http.Error(w, "not now", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	return rc, srv.URL
}

func (rc *receiver) snapshot() (attempts, accepted []receivedEvent, signed bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedEvent(nil), rc.attempts...), append([]receivedEvent(nil), rc.accepted...), rc.signed
}

// TestNotificationSurvivesACoreSIGKILL: a failed run's notification goes
// through the store's outbox to the webhook notifier, signed; the
// receiver refuses it, the core is SIGKILLed while it waits to try
// again, and the restarted core delivers it: exactly once accepted, every
// attempt with the same id and a growing attempt number.
func TestNotificationSurvivesACoreSIGKILL(t *testing.T) {
	t.Parallel()
	const secret = "e2e-secret"
	rc, url := newReceiver(t, secret)
	c := startCore(t, restartableCore(t)+fmt.Sprintf(`
notifier "hook" {
  plugin   = "webhook"
  backoff  = "1s"
  attempts = 20
  config {
    url    = %q
    secret = %q
  }
}
`, url, secret)+job("breaks", "echo broken; exit 3", `  notify "hook" {
    on = ["failure", "success"]
  }`))

	id := c.runNow("breaks")
	if r := c.waitFinal(id, 30*time.Second); r.Status != "failed" {
		t.Fatalf("run %s, want failed", r.Status)
	}
	select {
	case <-rc.got:
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery attempt reached the receiver")
	}
	// Killed once the refusal is recorded, while the core waits to try
	// again. (Killed during an attempt, the entry would wait for its
	// lease to run out, two minutes, before another core took it.)
	c.waitLog(t, "notification not delivered; trying again later", 30*time.Second)
	c.restart(syscall.SIGKILL)
	rc.mu.Lock()
	rc.accept = true
	rc.mu.Unlock()
	deadline := time.After(60 * time.Second)
	for {
		if _, accepted, _ := rc.snapshot(); len(accepted) > 0 {
			break
		}
		select {
		case <-rc.got:
		case <-deadline:
			t.Fatal("the restarted core did not deliver the notification")
		}
	}
	// Delivered is recorded right after the answer: once the core logged
	// it, nothing can be attempted again.
	c.waitLog(t, "notification delivered", 30*time.Second)

	attempts, accepted, signed := rc.snapshot()
	if len(accepted) != 1 {
		t.Fatalf("accepted %d times: %+v", len(accepted), accepted)
	}
	if !signed {
		t.Error("a request's X-Saltpeter-Signature did not match its body")
	}
	want := id + "/hook/failure"
	for i, ev := range attempts {
		if ev.ID != want || ev.Kind != "failure" || ev.RunID != id || ev.Status != "failed" || ev.Attempt != i+1 {
			t.Errorf("attempt %d: %+v, want id %s, attempt %d", i+1, ev, want, i+1)
		}
	}
	if ev := accepted[0]; !strings.Contains(ev.Message, "breaks failed on 1 of 1 machine") || !strings.HasPrefix(ev.Core, "http://") {
		t.Errorf("event %+v", ev)
	}
}

// waitLog waits until the core logged a line whose message is msg.
func (c *core) waitLog(t *testing.T, msg string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(c.logs.String(), `"@message":"`+msg+`"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the core did not log %q within %s", msg, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
