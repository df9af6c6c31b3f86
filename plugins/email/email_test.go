package email_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/plugins/email"
	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
)

func newNotifier(t *testing.T) *email.Notifier {
	t.Helper()
	return email.New(hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: io.Discard}))
}

func configured(t *testing.T, c []byte) *email.Notifier {
	t.Helper()
	n := newNotifier(t)
	if err := n.Configure(context.Background(), c); err != nil {
		t.Fatalf("Configure(%s): %v", c, err)
	}
	return n
}

// parse reads a received message, its body decoded.
func parse(t *testing.T, r record) (*mail.Message, string) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(r.Content))
	if err != nil {
		t.Fatalf("the server got an unreadable message: %v\n%s", err, r.Content)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return m, strings.ReplaceAll(string(body), "\r\n", "\n")
}

// mute is an SMTP server that takes connections and never greets.
func mute(t *testing.T) (int, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reached := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			once.Do(func() { close(reached) })
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port, reached
}

func TestConformance(t *testing.T) {
	s := startSMTPD(t, false)
	sdktest.TestNotifier(t, func(t *testing.T) notifier.Notifier { return newNotifier(t) }, sdktest.NotifierFixture{
		Config: s.config(t, nil),
		Received: func(t *testing.T) []sdktest.Delivery {
			var ds []sdktest.Delivery
			for _, r := range s.received(t) {
				m, _ := parse(t, r)
				ds = append(ds, sdktest.Delivery{ID: m.Header.Get("X-Saltpeter-Event-Id"),
					Kind: notifier.EventKind(m.Header.Get("X-Saltpeter-Event-Kind"))})
			}
			return ds
		},
		FailingConfig:   s.config(t, map[string]any{"to": []string{"tempfail@example.com"}}),
		PermanentConfig: s.config(t, map[string]any{"to": []string{"refuse@example.com"}}),
		Hanging: func(t *testing.T) ([]byte, <-chan struct{}) {
			port, reached := mute(t)
			return s.config(t, map[string]any{"port": port, "timeout": "1h"}), reached
		},
	})
}

func intp(i int) *int { return &i }

func failedEvent() notifier.Event {
	return notifier.Event{
		ID: "01J9ZQ4T3V6M2X8K5R7B0C1D2E", Kind: notifier.EventFailure, Job: "backup-db", Group: "databases",
		RunID: "r-42", Status: "failed", Trigger: "schedule",
		ScheduledFor: time.Date(2026, 3, 1, 2, 30, 0, 0, time.UTC),
		StartedAt:    time.Date(2026, 3, 1, 2, 30, 1, 0, time.UTC),
		FinishedAt:   time.Date(2026, 3, 1, 2, 41, 7, 0, time.UTC),
		Machines: []notifier.MachineResult{
			{Machine: "db1", Status: "succeeded", ExitCode: intp(0)},
			{Machine: "db3", Status: "failed", ExitCode: intp(2)},
			{Machine: "db7", Status: "lost", Reason: "no heartbeat for 30s"},
		},
		MachinesOmitted: 9,
		Counts:          map[string]int{"failed": 1, "lost": 1, "succeeded": 10},
		// A line that starts with a dot: SMTP's transparency must keep it.
		Message: ".profile broke backup-db on 2 of 12 machines",
		Core:    "https://cron.example.com", At: time.Date(2026, 3, 1, 2, 41, 7, 0, time.UTC), Attempt: 3,
	}
}

// TestDeliveryWithSTARTTLSAndAuth: through STARTTLS and a login, to two
// recipients, a message that says what happened.
func TestDeliveryWithSTARTTLSAndAuth(t *testing.T) {
	s := startSMTPD(t, false)
	n := configured(t, s.config(t, map[string]any{"to": []string{"ops@example.com", "Dana Ops <dana@example.com>"}}))
	ev := failedEvent()
	if err := n.Notify(context.Background(), ev); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	recs := s.received(t)
	if len(recs) != 1 {
		t.Fatalf("the server accepted %d messages, want 1", len(recs))
	}
	r := recs[0]
	if !r.TLS || r.Login == nil || *r.Login != smtpUser {
		t.Errorf("TLS %v, login %v: want TLS and %s's login", r.TLS, r.Login, smtpUser)
	}
	if r.MailFrom != "cron@example.com" || strings.Join(r.RcptTos, " ") != "ops@example.com dana@example.com" {
		t.Errorf("envelope from %q to %q", r.MailFrom, r.RcptTos)
	}
	m, body := parse(t, r)
	for k, want := range map[string]string{
		"Subject":                "[saltpeter] backup-db failed",
		"From":                   `"Saltpeter" <cron@example.com>`,
		"To":                     `<ops@example.com>, "Dana Ops" <dana@example.com>`,
		"Message-Id":             "<saltpeter.01J9ZQ4T3V6M2X8K5R7B0C1D2E@example.com>",
		"X-Saltpeter-Event-Id":   ev.ID,
		"X-Saltpeter-Event-Kind": "failure",
		"X-Saltpeter-Job":        "backup-db",
		"Auto-Submitted":         "auto-generated",
		"Content-Type":           "text/plain; charset=utf-8",
	} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	for _, want := range []string{
		".profile broke backup-db on 2 of 12 machines\n",
		"Status:         failed\n", "Scheduled for:  2026-03-01 02:30:00 UTC\n",
		"Machines:       1 failed, 1 lost, 10 succeeded\n",
		"Machines that did not succeed:\n  db3  failed, exit 2\n  db7  lost: no heartbeat for 30s\n  and 9 more\n",
		"The run: https://cron.example.com/api/v1/runs/r-42\n",
		"event 01J9ZQ4T3V6M2X8K5R7B0C1D2E, delivery attempt 3",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the body lacks %q; it reads:\n%s", want, body)
		}
	}
	if strings.Contains(body, "db1") {
		t.Error("a machine that succeeded is listed")
	}
}

func TestSubjectTemplate(t *testing.T) {
	s := startSMTPD(t, false)
	n := configured(t, s.config(t, map[string]any{"subject_template": "Tâche {{.Job}} : {{.Kind}}\r\nBcc: intruder@example.com"}))
	if err := n.Notify(context.Background(), failedEvent()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	m, _ := parse(t, s.received(t)[0])
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subject != "Tâche backup-db : failure Bcc: intruder@example.com" {
		t.Errorf("Subject %q (%v): want it decoded, on one line", subject, err)
	}
	if m.Header.Get("Bcc") != "" {
		t.Error("the subject template injected a header")
	}

	bad := configured(t, s.config(t, map[string]any{"subject_template": "{{.Machines.Nope}}"}))
	err = bad.Notify(context.Background(), failedEvent())
	if err == nil || !notifier.IsPermanent(err) || !strings.Contains(err.Error(), "subject_template") {
		t.Errorf("Notify with a subject that does not render = %v, want a permanent error", err)
	}
}

// TestWrongPassword: the server's refusal is permanent and quoted.
func TestWrongPassword(t *testing.T) {
	s := startSMTPD(t, false)
	n := configured(t, s.config(t, map[string]any{"password_file": nil, "password": "wrong"}))
	err := n.Notify(context.Background(), failedEvent())
	if err == nil || !notifier.IsPermanent(err) {
		t.Fatalf("Notify with a wrong password = %v, want a permanent error", err)
	}
	for _, want := range []string{"AUTH PLAIN", "535", "Authentication credentials invalid"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
	if n := len(s.received(t)); n != 0 {
		t.Errorf("the server accepted %d messages", n)
	}
}

func TestServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	n := configured(t, mustJSON(t, map[string]any{"host": "127.0.0.1", "port": port, "from": "cron@example.com", "to": []string{"ops@example.com"}}))
	err = n.Notify(context.Background(), failedEvent())
	if err == nil || notifier.IsPermanent(err) || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("Notify to a server that is down = %v, want a retryable connect error", err)
	}
}

func TestImplicitTLS(t *testing.T) {
	s := startSMTPD(t, true)
	n := configured(t, s.config(t, map[string]any{"tls": true}))
	if err := n.Notify(context.Background(), failedEvent()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if recs := s.received(t); len(recs) != 1 || recs[0].Login == nil {
		t.Errorf("received %+v", recs)
	}
}

// TestTLSAndLogin: a certificate of an unknown CA is refused; the
// password is not sent over a connection without TLS unless the config
// says so, and then the server's own refusal holds.
func TestTLSAndLogin(t *testing.T) {
	s := startSMTPD(t, false)
	err := configured(t, s.config(t, map[string]any{"ca_file": nil})).Notify(context.Background(), failedEvent())
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Notify to a server whose CA is not trusted = %v, want a certificate error at STARTTLS", err)
	}
	err = configured(t, s.config(t, map[string]any{"starttls": false, "ca_file": nil, "insecure_plain_auth": true})).Notify(context.Background(), failedEvent())
	if err == nil || !notifier.IsPermanent(err) || !strings.Contains(err.Error(), "does not offer AUTH") {
		t.Errorf("a login without TLS to a server that wants TLS first = %v, want a permanent error", err)
	}
	if n := len(s.received(t)); n != 0 {
		t.Errorf("the server accepted %d messages", n)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConfigErrors(t *testing.T) {
	base := map[string]any{"host": "smtp.example.com", "from": "cron@example.com", "to": []string{"ops@example.com"}}
	with := func(kv map[string]any) []byte {
		c := map[string]any{}
		for k, v := range base {
			c[k] = v
		}
		for k, v := range kv {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return mustJSON(t, c)
	}
	tests := []struct {
		config []byte
		want   string
	}{
		{with(nil), ""},
		{with(map[string]any{"host": nil}), "host is required"},
		{with(map[string]any{"host": "smtp.example.com:587"}), "the port goes in port"},
		{with(map[string]any{"port": 70000}), "port 70000"},
		{with(map[string]any{"from": nil}), "from is required"},
		{with(map[string]any{"from": "not an address"}), "from"},
		{with(map[string]any{"to": nil}), "to is required"},
		{with(map[string]any{"to": []string{"ok@example.com", "bad address"}}), `to "bad address"`},
		{with(map[string]any{"to": "ops@example.com"}), "cannot unmarshal string"},
		{with(map[string]any{"username": "u"}), "username without a password"},
		{with(map[string]any{"password": "p"}), "without a username"},
		{with(map[string]any{"username": "u", "password": "p", "password_file": "/x"}), "not both"},
		{with(map[string]any{"username": "u", "password_file": "/nonexistent/pw"}), "password_file"},
		{with(map[string]any{"username": "u", "password": "p", "starttls": false}), "in the clear"},
		{with(map[string]any{"username": "u", "password": "p", "starttls": false, "insecure_plain_auth": true}), ""},
		{with(map[string]any{"username": "u", "password": "p", "tls": true}), ""},
		{with(map[string]any{"starttls": true, "tls": true}), "set one"},
		{with(map[string]any{"subject_template": "{{.Job"}), "subject_template"},
		{with(map[string]any{"timeout": "1 minute"}), "timeout"},
		{with(map[string]any{"max_machines": -1}), "max_machines"},
		{with(map[string]any{"ca_file": "/nonexistent/ca.pem"}), "ca_file"},
		{with(map[string]any{"starttls": false, "ca_file": "/nonexistent/ca.pem"}), "neither starttls nor tls"},
		{with(map[string]any{"helo": "a b"}), "helo"},
		{with(map[string]any{"smtp_host": "x"}), `unknown field "smtp_host"`},
		{[]byte(`[]`), "not a JSON object"},
	}
	for _, tt := range tests {
		err := newNotifier(t).Configure(context.Background(), tt.config)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Configure(%s): %v", tt.config, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Configure(%s) = %v, want an error with %q", tt.config, err, tt.want)
		}
	}
}

func TestNotConfigured(t *testing.T) {
	err := newNotifier(t).Notify(context.Background(), failedEvent())
	if err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("Notify before Configure = %v", err)
	}
}
