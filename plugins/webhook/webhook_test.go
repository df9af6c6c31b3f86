package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/plugins/webhook"
	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
)

const testSecret = "s3cret shared with the receiver"

// receiver is a webhook endpoint that checks the signature over the exact
// body before it reads it, as a receiver should, and keeps what it got.
type receiver struct {
	*httptest.Server
	secret string

	mu       sync.Mutex
	requests []received
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	r := &receiver{secret: secret}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if rc.secret != "" {
		m := hmac.New(sha256.New, []byte(rc.secret))
		m.Write(body)
		want := "sha256=" + hex.EncodeToString(m.Sum(nil))
		if !hmac.Equal([]byte(r.Header.Get(webhook.HeaderSignature)), []byte(want)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
	}
	rc.mu.Lock()
	rc.requests = append(rc.requests, received{r.Header.Clone(), body})
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) got() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.requests...)
}

// deliveries reads the events the receiver got as JSON.
func (rc *receiver) deliveries(t *testing.T) []sdktest.Delivery {
	t.Helper()
	var ds []sdktest.Delivery
	for _, r := range rc.got() {
		var ev notifier.Event
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Errorf("the receiver got a body that is not an event: %v: %s", err, r.body)
			continue
		}
		if h := r.header.Get(webhook.HeaderEventID); h != ev.ID {
			t.Errorf("%s = %q, but the body's id is %q", webhook.HeaderEventID, h, ev.ID)
		}
		ds = append(ds, sdktest.Delivery{ID: ev.ID, Kind: ev.Kind})
	}
	return ds
}

// status is an endpoint that answers code to everything.
func status(t *testing.T, code int) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(code)
		fmt.Fprintf(w, "answer %d from the test", code)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// hanging is an endpoint that takes requests and never answers.
func hanging(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	reached := make(chan struct{})
	var once sync.Once
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body, so that the server watches the connection and
		// ends the request's context when the client goes.
		_, _ = io.Copy(io.Discard, r.Body)
		once.Do(func() { close(reached) })
		<-r.Context().Done()
	}))
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
	})
	return s.URL, reached
}

func conf(t *testing.T, kv map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(kv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newNotifier(t *testing.T) *webhook.Notifier {
	t.Helper()
	return webhook.New(hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: io.Discard}))
}

func TestConformance(t *testing.T) {
	rc := newReceiver(t, testSecret)
	sdktest.TestNotifier(t, func(t *testing.T) notifier.Notifier { return newNotifier(t) }, sdktest.NotifierFixture{
		Config:          conf(t, map[string]any{"url": rc.URL + "/hook?token=abc", "secret": testSecret}),
		Received:        rc.deliveries,
		FailingConfig:   conf(t, map[string]any{"url": status(t, http.StatusServiceUnavailable)}),
		PermanentConfig: conf(t, map[string]any{"url": status(t, http.StatusNotFound)}),
		Hanging: func(t *testing.T) ([]byte, <-chan struct{}) {
			url, reached := hanging(t)
			return conf(t, map[string]any{"url": url, "timeout": "1h"}), reached
		},
	})
}

func event(id string) notifier.Event {
	return notifier.Event{ID: id, Kind: notifier.EventFailure, Job: "backup-db", RunID: "r-1",
		Status: "failed", Message: `backup-db failed on "db3"`, Core: "https://cron.example.com",
		At: time.Date(2026, 3, 1, 2, 41, 7, 0, time.UTC), Attempt: 2}
}

func configured(t *testing.T, c []byte) *webhook.Notifier {
	t.Helper()
	n := newNotifier(t)
	if err := n.Configure(context.Background(), c); err != nil {
		t.Fatalf("Configure(%s): %v", c, err)
	}
	return n
}

// TestSignedEventJSON: the body is the event's JSON, the signature is the
// HMAC of exactly that body, with the secret inline or from a file, and
// the headers of the config arrive.
func TestSignedEventJSON(t *testing.T) {
	rc := newReceiver(t, testSecret)
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []map[string]any{
		{"url": rc.URL, "secret": testSecret, "headers": map[string]string{"authorization": "Bearer tok"}},
		{"url": rc.URL, "secret_file": file, "headers": map[string]string{"authorization": "Bearer tok"}},
	} {
		n := configured(t, conf(t, c))
		ev := event(fmt.Sprintf("e-%d", len(rc.got())))
		if err := n.Notify(context.Background(), ev); err != nil {
			t.Fatalf("Notify with %v: %v", c, err)
		}
		got := rc.got()
		last := got[len(got)-1]
		want, _ := json.Marshal(ev)
		if string(last.body) != string(want) {
			t.Errorf("body\n %s\nwant the event's JSON\n %s", last.body, want)
		}
		for k, v := range map[string]string{"Content-Type": "application/json", "Authorization": "Bearer tok", webhook.HeaderEventID: ev.ID} {
			if got := last.header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
	}
	// The receiver refuses a wrong signature with 401: the notifier with
	// the wrong secret fails, for good.
	n := configured(t, conf(t, map[string]any{"url": rc.URL, "secret": "wrong"}))
	err := n.Notify(context.Background(), event("e-wrong"))
	if err == nil || !notifier.IsPermanent(err) || !strings.Contains(err.Error(), "401") {
		t.Errorf("Notify with the wrong secret = %v, want a permanent 401", err)
	}
	// Without a secret, no signature.
	plain := newReceiver(t, "")
	if err := configured(t, conf(t, map[string]any{"url": plain.URL})).Notify(context.Background(), event("e-plain")); err != nil {
		t.Fatal(err)
	}
	if h := plain.got()[0].header; h.Get(webhook.HeaderSignature) != "" || h.Get(webhook.HeaderEventID) != "e-plain" {
		t.Errorf("unsigned request headers: %v", h)
	}
}

func TestBodyTemplate(t *testing.T) {
	rc := newReceiver(t, testSecret)
	n := configured(t, conf(t, map[string]any{
		"url": rc.URL, "secret": testSecret, "content_type": "application/vnd.example+json",
		"body_template": `{"text": {{json .Message}}, "id": "{{.ID}}", "link": "{{runURL .}}", "kind": "{{.Kind}}"}`,
	}))
	if err := n.Notify(context.Background(), event("e-tpl")); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	got := rc.got()[0]
	const want = `{"text": "backup-db failed on \"db3\"", "id": "e-tpl", "link": "https://cron.example.com/api/v1/runs/r-1", "kind": "failure"}`
	if string(got.body) != want {
		t.Errorf("body\n %s\nwant\n %s", got.body, want)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/vnd.example+json" {
		t.Errorf("Content-Type = %q", ct)
	}

	// A template that parses but cannot render this event: Permanent,
	// and nothing sent.
	bad := configured(t, conf(t, map[string]any{"url": rc.URL, "body_template": `{{.Machines.Nope}}`}))
	err := bad.Notify(context.Background(), event("e-bad"))
	if err == nil || !notifier.IsPermanent(err) || !strings.Contains(err.Error(), "render body_template") {
		t.Errorf("Notify with a template that fails = %v, want a permanent render error", err)
	}
	if n := len(rc.got()); n != 1 {
		t.Errorf("the receiver got %d requests, want 1", n)
	}
}

// TestAnswers: which answers deliver, which are retried, which are
// permanent; errors quote the answer but never the URL's path or query.
func TestAnswers(t *testing.T) {
	tests := []struct {
		code      int
		ok        bool
		permanent bool
	}{
		{200, true, false}, {201, true, false}, {204, true, false},
		{301, false, true}, {302, false, true},
		{400, false, true}, {401, false, true}, {403, false, true}, {404, false, true}, {410, false, true}, {422, false, true},
		{408, false, false}, {429, false, false},
		{500, false, false}, {502, false, false}, {503, false, false}, {504, false, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			n := configured(t, conf(t, map[string]any{"url": status(t, tt.code) + "/T0KEN/path?key=SECRETQ"}))
			err := n.Notify(context.Background(), event("e"))
			if tt.ok {
				if err != nil {
					t.Fatalf("Notify = %v, want delivered", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Notify delivered")
			}
			if notifier.IsPermanent(err) != tt.permanent {
				t.Errorf("Notify = %v: permanent %v, want %v", err, notifier.IsPermanent(err), tt.permanent)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tt.code)) || (tt.code >= 400 && !strings.Contains(err.Error(), fmt.Sprintf("answer %d from the test", tt.code))) {
				t.Errorf("error %q does not quote the answer", err)
			}
			if strings.Contains(err.Error(), "T0KEN") || strings.Contains(err.Error(), "SECRETQ") {
				t.Errorf("error %q shows the URL's path or query", err)
			}
		})
	}
	t.Run("nobody listening", func(t *testing.T) {
		s := httptest.NewServer(http.NotFoundHandler())
		url := s.URL + "/T0KEN"
		s.Close()
		err := configured(t, conf(t, map[string]any{"url": url})).Notify(context.Background(), event("e"))
		if err == nil || notifier.IsPermanent(err) {
			t.Fatalf("Notify to a closed port = %v, want a retryable error", err)
		}
		if strings.Contains(err.Error(), "T0KEN") {
			t.Errorf("error %q shows the URL's path", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		url, _ := hanging(t)
		n := configured(t, conf(t, map[string]any{"url": url, "timeout": "200ms"}))
		start := time.Now()
		err := n.Notify(context.Background(), event("e"))
		if err == nil || notifier.IsPermanent(err) {
			t.Fatalf("Notify to a receiver that does not answer = %v, want a retryable error", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Notify took %s with a 200ms timeout", d)
		}
	})
}

// TestCAFile: an https receiver with a private CA is refused against the
// system's roots and reached with ca_file.
func TestCAFile(t *testing.T) {
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(s.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := configured(t, conf(t, map[string]any{"url": s.URL})).Notify(context.Background(), event("e")); err == nil {
		t.Error("a certificate of an unknown CA was accepted")
	}
	if err := configured(t, conf(t, map[string]any{"url": s.URL, "ca_file": ca})).Notify(context.Background(), event("e")); err != nil {
		t.Errorf("Notify with ca_file: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		config string
		want   string
	}{
		{`{}`, "url is required"},
		{`{"url": "ftp://example.com/x"}`, "want an https://"},
		{`{"url": "https://user:pw@example.com/x"}`, "holds credentials"},
		{`{"url": "https://example.com", "timeout": "soon"}`, "timeout"},
		{`{"url": "https://example.com", "timeout": "-1s"}`, "positive"},
		{`{"url": "https://example.com", "secret": "a", "secret_file": "/x"}`, "not both"},
		{`{"url": "https://example.com", "secret_file": "` + filepath.Join(dir, "none") + `"}`, "secret_file"},
		{`{"url": "https://example.com", "secret_file": "` + empty + `"}`, "is empty"},
		{`{"url": "https://example.com", "ca_file": "` + filepath.Join(dir, "none") + `"}`, "ca_file"},
		{`{"url": "https://example.com", "ca_file": "` + empty + `"}`, "no PEM certificate"},
		{`{"url": "http://example.com", "ca_file": "` + empty + `"}`, "not https"},
		{`{"url": "https://example.com", "body_template": "{{.ID"}`, "body_template"},
		{`{"url": "https://example.com", "headers": {"X-Saltpeter-Signature": "x"}}`, "set by the notifier"},
		{`{"url": "https://example.com", "headers": {"X-A": "a\nb"}}`, "line break"},
		{`{"url": "https://example.com", "header": {}}`, `unknown field "header"`},
		{`{"url": "https://example.com", "timeout": 10}`, "cannot unmarshal number"},
		{`["https://example.com"]`, "not a JSON object"},
		{`{"url": "https://example.com"} {}`, "trailing data"},
	}
	for _, tt := range tests {
		err := newNotifier(t).Configure(context.Background(), []byte(tt.config))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Configure(%s) = %v, want an error with %q", tt.config, err, tt.want)
		}
	}
	// Every mistake at once.
	err := newNotifier(t).Configure(context.Background(), []byte(`{"timeout": "soon", "secret": "a", "secret_file": "/x"}`))
	for _, want := range []string{"url is required", "timeout", "not both"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Configure with three mistakes = %v, want %q among them", err, want)
		}
	}
}

func TestNotConfigured(t *testing.T) {
	err := newNotifier(t).Notify(context.Background(), event("e"))
	if err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("Notify before Configure = %v", err)
	}
}
