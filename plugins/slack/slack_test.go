package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/plugins/slack"
	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
)

// workspace is a stand-in incoming webhook: it checks each payload as
// Slack would (JSON with text and well-formed blocks within Slack's
// limits) and keeps what it accepted.
type workspace struct {
	*httptest.Server
	mu   sync.Mutex
	msgs []slack.Message
}

func newWorkspace(t *testing.T) *workspace {
	t.Helper()
	w := &workspace{}
	w.Server = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.Close)
	return w
}

func (ws *workspace) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	var raw map[string]json.RawMessage
	var m slack.Message
	if json.Unmarshal(body, &raw) != nil || json.Unmarshal(body, &m) != nil || m.Text == "" || len(raw) != 2 {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	for _, b := range m.Blocks {
		if problem := checkBlock(b); problem != "" {
			http.Error(w, "invalid_blocks: "+problem, http.StatusBadRequest)
			return
		}
	}
	ws.mu.Lock()
	ws.msgs = append(ws.msgs, m)
	ws.mu.Unlock()
	fmt.Fprint(w, "ok")
}

// checkBlock checks what Slack checks of the block kinds we send.
func checkBlock(b slack.Block) string {
	switch b.Type {
	case "header":
		if b.Text == nil || b.Text.Type != "plain_text" || utf8.RuneCountInString(b.Text.Text) > 150 {
			return "header"
		}
	case "section":
		if (b.Text == nil) == (len(b.Fields) == 0) || len(b.Fields) > 10 {
			return "section"
		}
		if b.Text != nil && (b.Text.Type != "mrkdwn" || utf8.RuneCountInString(b.Text.Text) > 3000) {
			return "section text"
		}
		for _, f := range b.Fields {
			if utf8.RuneCountInString(f.Text) > 2000 {
				return "section field"
			}
		}
	case "context":
		if len(b.Elements) == 0 || len(b.Elements) > 10 {
			return "context"
		}
	default:
		return "block type " + b.Type
	}
	return ""
}

func (ws *workspace) got() []slack.Message {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return append([]slack.Message(nil), ws.msgs...)
}

var footerRE = regexp.MustCompile("^Saltpeter · ([a-z_]+) · event `([^`]+)`")

func (ws *workspace) deliveries(t *testing.T) []sdktest.Delivery {
	t.Helper()
	var ds []sdktest.Delivery
	for _, m := range ws.got() {
		last := m.Blocks[len(m.Blocks)-1]
		if last.Type != "context" || len(last.Elements) == 0 {
			t.Errorf("a message without its footer: %+v", m)
			continue
		}
		f := footerRE.FindStringSubmatch(last.Elements[0].Text)
		if f == nil {
			t.Errorf("footer %q names no kind and id", last.Elements[0].Text)
			continue
		}
		ds = append(ds, sdktest.Delivery{ID: f[2], Kind: notifier.EventKind(f[1])})
	}
	return ds
}

func answering(t *testing.T, code int, body string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, body, code)
	}))
	t.Cleanup(s.Close)
	return s.URL + "/services/T000/B000/XXXSECRETXXX"
}

func conf(t *testing.T, kv map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(kv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newNotifier(t *testing.T) *slack.Notifier {
	t.Helper()
	return slack.New(hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: io.Discard}))
}

func configured(t *testing.T, c []byte) *slack.Notifier {
	t.Helper()
	n := newNotifier(t)
	if err := n.Configure(context.Background(), c); err != nil {
		t.Fatalf("Configure(%s): %v", c, err)
	}
	return n
}

func TestConformance(t *testing.T) {
	ws := newWorkspace(t)
	sdktest.TestNotifier(t, func(t *testing.T) notifier.Notifier { return newNotifier(t) }, sdktest.NotifierFixture{
		Config:          conf(t, map[string]any{"url": ws.URL + "/services/T000/B000/XXX"}),
		Received:        ws.deliveries,
		FailingConfig:   conf(t, map[string]any{"url": answering(t, http.StatusInternalServerError, "rollup_error")}),
		PermanentConfig: conf(t, map[string]any{"url": answering(t, http.StatusNotFound, "no_service")}),
		Hanging: func(t *testing.T) ([]byte, <-chan struct{}) {
			reached := make(chan struct{})
			var once sync.Once
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				once.Do(func() { close(reached) })
				<-r.Context().Done()
			}))
			t.Cleanup(func() { s.CloseClientConnections(); s.Close() })
			return conf(t, map[string]any{"url": s.URL, "timeout": "1h"}), reached
		},
	})
}

func intp(i int) *int { return &i }

func failedEvent() notifier.Event {
	ev := notifier.Event{
		ID: "ev-1", Kind: notifier.EventFailure, Job: "backup-db", Group: "databases", RunID: "r-42",
		Status: "failed", Trigger: "schedule", ScheduledFor: time.Date(2026, 3, 1, 2, 30, 0, 0, time.UTC),
		Message: "backup-db failed on 7 of 9 machines <!channel> & more", Core: "https://cron.example.com/",
		Counts: map[string]int{"failed": 6, "lost": 1, "succeeded": 2}, MachinesOmitted: 2, Attempt: 2,
		At: time.Date(2026, 3, 1, 2, 41, 0, 0, time.UTC),
	}
	ev.Machines = append(ev.Machines, notifier.MachineResult{Machine: "db0", Status: "succeeded", ExitCode: intp(0)})
	for i := 1; i <= 5; i++ {
		ev.Machines = append(ev.Machines, notifier.MachineResult{Machine: fmt.Sprintf("db%d", i), Status: "failed", ExitCode: intp(i)})
	}
	ev.Machines = append(ev.Machines, notifier.MachineResult{Machine: "db<6>", Status: "lost", Reason: "no heartbeat for 30s"})
	return ev
}

// blockTexts flattens a message's blocks to their texts, one string.
func blockTexts(m slack.Message) string {
	var b strings.Builder
	for _, bl := range m.Blocks {
		if bl.Text != nil {
			b.WriteString(bl.Text.Text + "\n")
		}
		for _, f := range append(bl.Fields, bl.Elements...) {
			b.WriteString(f.Text + "\n")
		}
	}
	return b.String()
}

// TestMessageReadsWell posts a failure and checks what the channel shows.
func TestMessageReadsWell(t *testing.T) {
	ws := newWorkspace(t)
	n := configured(t, conf(t, map[string]any{"url": ws.URL, "max_machines": 3}))
	if err := n.Notify(context.Background(), failedEvent()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	got := ws.got()
	if len(got) != 1 {
		t.Fatalf("%d messages, want 1", len(got))
	}
	m := got[0]
	if want := "backup-db failed: backup-db failed on 7 of 9 machines &lt;!channel&gt; &amp; more"; m.Text != want {
		t.Errorf("text = %q, want %q (Slack's control characters escaped)", m.Text, want)
	}
	if h := m.Blocks[0]; h.Type != "header" || h.Text.Text != ":x: backup-db failed" {
		t.Errorf("first block = %+v, want the header", h)
	}
	all := blockTexts(m)
	for _, want := range []string{
		"*Job*\nbackup-db", "*Status*\nfailed", "*Group*\ndatabases", "*Trigger*\nschedule",
		"*Scheduled for*\n2026-03-01 02:30:00 UTC", "*Machines*\n6 failed, 1 lost, 2 succeeded",
		"*Machines*\n• `db1` failed, exit 1\n• `db2` failed, exit 2\n• `db3` failed, exit 3\n_and 5 more_",
		"<https://cron.example.com/api/v1/runs/r-42|View run r-42>",
		"Saltpeter · failure · event `ev-1` · attempt 2",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the message lacks %q; it reads:\n%s", want, all)
		}
	}
	if strings.Contains(all, "db0") {
		t.Error("a machine that succeeded is listed among the failing")
	}
	if strings.Contains(all, "<!channel>") {
		t.Error("the core's message can mention @channel")
	}
}

func TestComposeVariants(t *testing.T) {
	t.Run("no core URL, no link", func(t *testing.T) {
		ev := failedEvent()
		ev.Core = ""
		if all := blockTexts(slack.Compose(ev, 5)); strings.Contains(all, "View run") {
			t.Errorf("a link without the core's URL:\n%s", all)
		}
	})
	t.Run("escaped machine and reason", func(t *testing.T) {
		all := blockTexts(slack.Compose(failedEvent(), 10))
		if !strings.Contains(all, "• `db&lt;6&gt;` lost: no heartbeat for 30s\n_and 2 more_") {
			t.Errorf("the machines:\n%s", all)
		}
	})
	t.Run("max_machines 0", func(t *testing.T) {
		if all := blockTexts(slack.Compose(failedEvent(), 0)); strings.Contains(all, "db1") {
			t.Errorf("machines listed with max_machines 0:\n%s", all)
		}
	})
	t.Run("missed", func(t *testing.T) {
		ev := notifier.Event{ID: "m-1", Kind: notifier.EventMissed, Job: "nightly", Message: "nightly has not succeeded for 26h", Attempt: 1}
		m := slack.Compose(ev, 5)
		if m.Blocks[0].Text.Text != ":alarm_clock: nightly missed its schedule" {
			t.Errorf("header %q", m.Blocks[0].Text.Text)
		}
		for _, b := range m.Blocks {
			if problem := checkBlock(b); problem != "" {
				t.Errorf("block %+v: %s", b, problem)
			}
		}
	})
	t.Run("long text clipped", func(t *testing.T) {
		ev := failedEvent()
		ev.Job = strings.Repeat("j", 300)
		ev.Message = strings.Repeat("é", 4000)
		for _, b := range slack.Compose(ev, 5).Blocks {
			if problem := checkBlock(b); problem != "" {
				t.Errorf("block %s: %s", b.Type, problem)
			}
		}
	})
}

func TestAnswers(t *testing.T) {
	tests := []struct {
		code      int
		body      string
		permanent bool
	}{
		{400, "invalid_payload", true},
		{403, "action_prohibited", true},
		{404, "no_service", true},
		{410, "channel_is_archived", true},
		{429, "rate_limited", false},
		{500, "rollup_error", false},
		{503, "service_unavailable", false},
	}
	for _, tt := range tests {
		err := configured(t, conf(t, map[string]any{"url": answering(t, tt.code, tt.body)})).Notify(context.Background(), failedEvent())
		if err == nil || notifier.IsPermanent(err) != tt.permanent || !strings.Contains(err.Error(), tt.body) {
			t.Errorf("answer %d %s: Notify = %v (permanent %v), want permanent %v naming the answer",
				tt.code, tt.body, err, notifier.IsPermanent(err), tt.permanent)
		}
		if err != nil && strings.Contains(err.Error(), "XXXSECRETXXX") {
			t.Errorf("the error shows the webhook's secret path: %v", err)
		}
	}
}

func TestURLFile(t *testing.T) {
	ws := newWorkspace(t)
	file := filepath.Join(t.TempDir(), "slack-url")
	if err := os.WriteFile(file, []byte(ws.URL+"/services/T/B/X\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := configured(t, conf(t, map[string]any{"url_file": file})).Notify(context.Background(), failedEvent()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if len(ws.got()) != 1 {
		t.Error("nothing posted")
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ config, want string }{
		{`{}`, "url (or url_file) is required"},
		{`{"url": "https://hooks.slack.com/x", "url_file": "/x"}`, "not both"},
		{`{"url_file": "/nonexistent/slack-url"}`, "url_file"},
		{`{"url": "hooks.slack.com/x"}`, "want an https://"},
		{`{"url": "https://hooks.slack.com/x", "max_machines": -1}`, "max_machines"},
		{`{"url": "https://hooks.slack.com/x", "timeout": "1 minute"}`, "timeout"},
		{`{"url": "https://hooks.slack.com/x", "channel": "#ops"}`, `unknown field "channel"`},
		{`"https://hooks.slack.com/x"`, "not a JSON object"},
	}
	for _, tt := range tests {
		err := newNotifier(t).Configure(context.Background(), []byte(tt.config))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Configure(%s) = %v, want an error with %q", tt.config, err, tt.want)
		}
	}
}
