package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium, which .ci/deps installs.
const chromiumPath = "/usr/bin/chromium"

// uiWait bounds every wait on the page; each is for a condition, and the
// bound only keeps a broken page from hanging the test.
const uiWait = 30 * time.Second

// chromiumRequired reports whether SALTPETER_REQUIRE asks for chromium:
// "all", or a comma list naming "chromium".
func chromiumRequired() bool {
	for _, c := range strings.Split(os.Getenv("SALTPETER_REQUIRE"), ",") {
		if c = strings.TrimSpace(c); c == "all" || c == "chromium" {
			return true
		}
	}
	return false
}

// browser starts a headless chromium of its own (its own cookies) and
// returns a tab in it; a browser-side exception or console error is
// logged, so a failing test shows what the page said.
func browser(t *testing.T) context.Context {
	t.Helper()
	if fi, err := os.Stat(chromiumPath); err != nil || fi.Mode()&0o111 == 0 {
		hint := "chromium is not installed at " + chromiumPath + "; run .ci/deps"
		if chromiumRequired() {
			t.Fatalf("SALTPETER_REQUIRE=%s: %s", os.Getenv("SALTPETER_REQUIRE"), hint)
		}
		t.Skip(hint)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		// The tests run as root, where chromium's sandbox will not start.
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	// The page's complaints are kept, not logged as they come: the
	// listener may outlive the test, where t.Logf panics.
	var mu sync.Mutex
	var said []string
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() && len(said) > 0 {
			t.Logf("the browser said:\n%s", strings.Join(said, "\n"))
		}
	})
	err := chromedp.Listen(ctx, func(ev any) {
		var line string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			line = fmt.Sprintf("exception: %s", ev.ExceptionDetails.Text)
			if ev.ExceptionDetails.Exception != nil {
				line += " " + ev.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			line = fmt.Sprintf("console %s: %s", ev.Type, strings.Join(args, " "))
		default:
			return
		}
		mu.Lock()
		said = append(said, line)
		mu.Unlock()
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// do runs browser actions and fails the test on the first error.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// until waits for a JavaScript condition to hold on the page.
func until(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	if ok, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(uiWait))); err != nil || !ok {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: %s did not hold (%v); the page reads:\n%s", what, js, err, page)
	}
}

// textHas is a condition: the element's text contains want.
func textHas(sel, want string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent.includes(%q); })()`, sel, want)
}

// present is a condition: an element matches sel.
func present(sel string) string {
	return fmt.Sprintf(`document.querySelector(%q) !== null`, sel)
}

// eval returns a JavaScript expression's value.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// fetchStatus makes the page call the API itself, with its own cookie,
// and returns the answer's status.
func fetchStatus(t *testing.T, ctx context.Context, method, path string) int {
	t.Helper()
	js := fmt.Sprintf(`fetch(%q, { method: %q, credentials: 'same-origin' }).then((r) => r.status)`, path, method)
	v, err := chromedp.Run(ctx, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("fetch %s %s from the page: %v", method, path, err)
	}
	return v
}

// choose picks value in a select as a reader does, change event and all.
func choose(t *testing.T, ctx context.Context, sel, value string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const s = document.querySelector(%q); if (!s || ![...s.options].some((o) => o.value === %q)) return false;
		s.value = %q; s.dispatchEvent(new Event('change', { bubbles: true })); return true; })()`, sel, value, value)
	if !eval[bool](t, ctx, js) {
		t.Fatalf("%s has no option %q", sel, value)
	}
}

// visible is a condition: the element is drawn and lies across the
// viewport's width, so a reader reaches it without scrolling sideways.
func visible(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false;
		const r = e.getBoundingClientRect(); const w = document.documentElement.clientWidth;
		return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= w && getComputedStyle(e).visibility !== 'hidden'; })()`, sel)
}

// click clicks the element sel finds, found and clicked in one step: a
// table row redrawn by an event between a lookup and a click would lose
// chromedp.Click's node.
func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	if !eval[bool](t, ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.click(); return true; })()`, sel)) {
		t.Fatalf("nothing to click at %s", sel)
	}
}

// The tokens the UI tests sign in with: sha256 digests in the
// configuration, secrets in the browser.
const (
	readSecret    = "read-secret"
	operateSecret = "operate-secret"
)

// withTokens is a core block's api_tokens: "viewer" reads, "ops" operates.
func withTokens() string {
	digest := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	return fmt.Sprintf(`  api_tokens = [
    { name = "viewer", role = "read", sha256 = %q },
    { name = "ops", role = "operate", sha256 = %q },
  ]`, digest(readSecret), digest(operateSecret))
}

// signIn fills in the sign-in form the page shows.
func signIn(t *testing.T, ctx context.Context, secret string) {
	t.Helper()
	until(t, ctx, "sign-in form shown", present("#signin #token"))
	do(t, ctx, "sign in", chromedp.SendKeys(chromedp.CSS("#token"), secret), chromedp.Click(chromedp.CSS(`#signin button[type="submit"]`)))
}

// bearer calls the API with a token, as a script would, and decodes a
// JSON answer into out (if set).
func bearer(t *testing.T, c *core, secret, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.url(path), rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := c.http().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, path, err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

// runAction is an operator action as GET /api/v1/runs/{id} lists it.
type runAction struct {
	Kind    string  `json:"kind"`
	Machine string  `json:"machine"`
	Signal  string  `json:"signal"`
	Grace   *string `json:"grace"`
	By      string  `json:"by"`
}

// runActions returns the operator actions on a run, oldest first.
func runActions(t *testing.T, c *core, id string) []runAction {
	t.Helper()
	var r struct {
		Actions []runAction `json:"actions"`
	}
	if st := c.call(http.MethodGet, "/api/v1/runs/"+id, nil, &r); st != http.StatusOK {
		t.Fatalf("get run %s: status %d", id, st)
	}
	return r.Actions
}

// waitActions waits until the run lists n operator actions: the page
// posts them after the dialog closes, so the test awaits their arrival.
func waitActions(t *testing.T, c *core, id string, n int) []runAction {
	t.Helper()
	deadline := time.Now().Add(uiWait)
	for {
		a := runActions(t, c, id)
		if len(a) >= n {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: %d actions, want %d: %+v", id, len(a), n, a)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gatedJob prints first, waits for the gate file, prints second.
func gatedJob(name, gate, first, second string) string {
	return job(name, fmt.Sprintf(`echo %s; while [ ! -e %s ]; do sleep 0.05; done; echo %s`, first, gate, second), "")
}

// TestUIJobsPage: the jobs page lists the configured jobs, filters them,
// and its events socket opens under the page's Content-Security-Policy.
func TestUIJobsPage(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("alpha", "true", `group = "nightly"`)+job("beta", "true", ""))
	ctx := browser(t)
	do(t, ctx, "open the jobs page", chromedp.Navigate(c.url("/#/jobs")))
	until(t, ctx, "alpha listed", present(`#jobs tr[data-job="alpha"]`))
	until(t, ctx, "beta listed", present(`#jobs tr[data-job="beta"]`))
	until(t, ctx, "alpha's group shown", textHas(`#jobs tr[data-job="alpha"]`, "nightly"))
	until(t, ctx, "events socket open", `document.getElementById('live').dataset.state === 'open'`)
	// With tokens off there is nothing to sign in with.
	if eval[bool](t, ctx, present("#signin")) {
		t.Fatal("a sign-in form is shown with tokens off")
	}
	if !eval[bool](t, ctx, `document.getElementById('sign-out').hidden`) {
		t.Fatal("a sign-out button is shown with tokens off")
	}
	do(t, ctx, "filter", chromedp.SendKeys(chromedp.CSS("#filter"), "alp"))
	until(t, ctx, "beta filtered out", `document.querySelector('#jobs tr[data-job="beta"]') === null && document.querySelector('#jobs tr[data-job="alpha"]') !== null`)
}

// TestUIRunOutputLive: the run page shows output as the job prints it:
// the line printed after the page loaded appears without a reload.
func TestUIRunOutputLive(t *testing.T) {
	t.Parallel()
	gate := filepath.Join(t.TempDir(), "gate")
	c := startCore(t, coreBlock("")+gatedJob("gated", gate, "first-line", "second-line"))
	id := c.runNow("gated")
	ctx := browser(t)
	do(t, ctx, "open the run page", chromedp.Navigate(c.url("/#/runs/"+id)))
	until(t, ctx, "first line shown", textHas("#output", "first-line"))
	if eval[bool](t, ctx, textHas("#output", "second-line")) {
		t.Fatal("second line shown before the gate opened")
	}
	eval[string](t, ctx, `window.__uiTestMarker = 'same page'`)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, "second line shown", textHas("#output", "second-line"))
	until(t, ctx, "machine succeeded", textHas("#machines .machine-status", "succeeded"))
	if m := eval[string](t, ctx, `window.__uiTestMarker || ''`); m != "same page" {
		t.Fatalf("the page was reloaded: marker %q", m)
	}
	if out := eval[string](t, ctx, `document.getElementById('output').textContent`); out != "first-line\nsecond-line\n" {
		t.Fatalf("output reads %q", out)
	}
}

// TestUIKillConfirms: "Kill run" opens a dialog naming the job, the run
// and the machine; confirming it kills the run.
func TestUIKillConfirms(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("sleeper", "echo started; sleep 300", ""))
	id := c.runNow("sleeper")
	c.waitRunning(id)
	host := hostname(t)
	ctx := browser(t)
	do(t, ctx, "open the run page", chromedp.Navigate(c.url("/#/runs/"+id)))
	until(t, ctx, "kill button shown", present("#kill-run"))
	do(t, ctx, "click kill", chromedp.Click(chromedp.CSS("#kill-run")))
	until(t, ctx, "dialog open", `document.getElementById('confirm').open`)
	for _, want := range []string{"sleeper", id, host} {
		if !eval[bool](t, ctx, textHas("#confirm", want)) {
			t.Fatalf("the dialog does not name %q: %s", want, eval[string](t, ctx, `document.getElementById('confirm').textContent`))
		}
	}
	if r := c.run(id); r.Status != "running" {
		t.Fatalf("run %s before the dialog was answered", r.Status)
	}
	do(t, ctx, "confirm", chromedp.Click(chromedp.CSS("#confirm-ok")))
	if r := c.waitFinal(id, 30*time.Second); r.Status != "killed" || r.Machines[0].Status != "killed" {
		t.Fatalf("run after the confirmed kill: %+v", r)
	}
	until(t, ctx, "page shows killed", textHas("#run-status", "killed"))
	if eval[bool](t, ctx, present("#kill-run")) {
		t.Fatal("kill button still shown on a finished run")
	}
}

// TestUITokenRoles: with api_tokens the page asks for a token; an operate
// token can start a run and sees the kill buttons, a read token sees the
// same run with no action button at all, and a wrong token is refused.
func TestUITokenRoles(t *testing.T) {
	t.Parallel()
	digest := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	c := startCore(t, coreBlock(fmt.Sprintf(`  api_tokens = [
    { name = "viewer", role = "read", sha256 = %q },
    { name = "ops", role = "operate", sha256 = %q },
  ]`, digest("read-secret"), digest("operate-secret")))+job("sleeper", "echo started; sleep 300", ""))

	signIn := func(ctx context.Context, secret string) {
		t.Helper()
		until(t, ctx, "sign-in form shown", present("#signin #token"))
		do(t, ctx, "sign in", chromedp.SendKeys(chromedp.CSS("#token"), secret), chromedp.Click(chromedp.CSS(`#signin button[type="submit"]`)))
	}

	ops := browser(t)
	do(t, ops, "open the job page", chromedp.Navigate(c.url("/#/jobs/sleeper")))
	signIn(ops, "wrong-secret")
	until(t, ops, "wrong token refused", textHas("#signin-error", "not one this core knows"))
	eval[string](t, ops, `document.getElementById('token').value = ''`)
	signIn(ops, "operate-secret")
	until(t, ops, "signed in as ops", textHas("#who", "ops (operate)"))
	until(t, ops, "run now shown", present("#run-now"))
	do(t, ops, "run now", chromedp.Click(chromedp.CSS("#run-now")))
	until(t, ops, "on the run page", `location.hash.startsWith('#/runs/')`)
	id := strings.TrimPrefix(eval[string](t, ops, `location.hash`), "#/runs/")
	until(t, ops, "kill button shown to operate", present("#kill-run"))
	until(t, ops, "machine kill shown to operate", present(".kill-machine"))
	until(t, ops, "events socket open with the cookie", `document.getElementById('live').dataset.state === 'open'`)

	viewer := browser(t)
	do(t, viewer, "open the run page", chromedp.Navigate(c.url("/#/runs/"+id)))
	signIn(viewer, "read-secret")
	until(t, viewer, "signed in as viewer", textHas("#who", "viewer (read)"))
	until(t, viewer, "the run shown", textHas("#run-status", "running"))
	until(t, viewer, "the machine shown", present("#machines tr[data-machine]"))
	until(t, viewer, "events socket open with the cookie", `document.getElementById('live').dataset.state === 'open'`)
	for _, sel := range []string{"#kill-run", ".kill-machine", "#pause", "#resume", "main button"} {
		if eval[bool](t, viewer, present(sel)) {
			t.Errorf("read role sees %s", sel)
		}
	}
	do(t, viewer, "open the jobs page", chromedp.Navigate(c.url("/#/jobs")))
	until(t, viewer, "jobs listed", present(`#jobs tr[data-job="sleeper"]`))
	// An override is set, so that an operate page would offer to reset it.
	if st := bearer(t, c, operateSecret, http.MethodPost, "/api/v1/jobs/sleeper/disable", nil, nil); st != http.StatusOK {
		t.Fatalf("disable: status %d", st)
	}
	do(t, viewer, "open the job page", chromedp.Navigate(c.url("/#/jobs/sleeper")))
	until(t, viewer, "job settings shown", textHas("#settings", "sleep 300"))
	until(t, viewer, "the override shown", textHas(`#settings dd[data-field="enabled"]`, "set by ops"))
	if eval[bool](t, viewer, `document.querySelector('main button') !== null`) {
		t.Errorf("read role sees a button on the job page: %s", eval[string](t, viewer, `document.querySelector('main button').textContent`))
	}
}

// TestUIMaintenance: with tokens off (every caller operates) the
// maintenance page turns global maintenance on, which the API then
// reports and every page's banner shows, and follows a change made
// elsewhere; it saves a machine list as the whole state and drops the
// override. A read token sees the state and where it comes from, and no
// control at all.
func TestUIMaintenance(t *testing.T) {
	t.Parallel()
	type maint struct {
		Global   bool     `json:"global"`
		Machines []string `json:"machines"`
		Source   string   `json:"source"`
		SetBy    string   `json:"set_by"`
	}
	c := startCore(t, coreBlock("")+job("alpha", "true", ""))
	getMaint := func() maint {
		t.Helper()
		var m maint
		if st := c.call(http.MethodGet, "/api/v1/maintenance", nil, &m); st != http.StatusOK {
			t.Fatalf("GET maintenance: %d", st)
		}
		return m
	}
	bannerShown := `!document.getElementById('maint-banner').hidden && document.getElementById('maint-banner').textContent.includes('Global maintenance is on')`
	bannerHidden := `document.getElementById('maint-banner').hidden`

	ctx := browser(t)
	do(t, ctx, "open the jobs page", chromedp.Navigate(c.url("/#/jobs")))
	until(t, ctx, "alpha listed", present(`#jobs tr[data-job="alpha"]`))
	until(t, ctx, "events socket open", `document.getElementById('live').dataset.state === 'open'`)
	if !eval[bool](t, ctx, bannerHidden) {
		t.Fatal("the maintenance banner is shown with no maintenance")
	}
	do(t, ctx, "follow the header's link", chromedp.Click(chromedp.CSS(`header a[href="#/maintenance"]`)))
	until(t, ctx, "source shown", textHas("#maint-source", "configuration"))
	until(t, ctx, "global shown off", textHas("#maint-global-state", "off"))
	until(t, ctx, "editor shown to operate", present("#maint-global"))
	until(t, ctx, "the page says save replaces everything", textHas("#maint-explain", "replaces the whole maintenance state"))
	eval[string](t, ctx, `window.__uiTestMarker = 'same page'`)

	do(t, ctx, "switch global on", chromedp.Click(chromedp.CSS("#maint-global")))
	if m := getMaint(); m.Global {
		t.Fatalf("global maintenance on before Save: %+v", m)
	}
	do(t, ctx, "save", chromedp.Click(chromedp.CSS("#maint-save")))
	until(t, ctx, "global shown on", textHas("#maint-global-state", "on"))
	until(t, ctx, "source shown as the API", textHas("#maint-source", "set by local"))
	if m := getMaint(); !m.Global || len(m.Machines) != 0 || m.Source != "api" || m.SetBy != "local" {
		t.Fatalf("maintenance after saving global on: %+v", m)
	}

	do(t, ctx, "open the jobs page", chromedp.Click(chromedp.CSS(`header nav a[href="#/jobs"]`)))
	until(t, ctx, "alpha listed", present(`#jobs tr[data-job="alpha"]`))
	until(t, ctx, "banner on the jobs page", bannerShown)
	// A change made elsewhere reaches the banner through the events
	// socket alone: the page is neither reloaded nor navigated.
	var m maint
	if st := c.call(http.MethodPut, "/api/v1/maintenance", map[string]any{"global": false, "machines": []string{}}, &m); st != http.StatusOK {
		t.Fatalf("PUT maintenance: %d", st)
	}
	until(t, ctx, "banner gone after the API turned it off", bannerHidden)

	do(t, ctx, "back to the maintenance page", chromedp.Click(chromedp.CSS(`header a[href="#/maintenance"]`)))
	until(t, ctx, "global shown off", textHas("#maint-global-state", "off"))
	until(t, ctx, "editor drawn", present("#maint-add-name"))
	if eval[bool](t, ctx, `document.getElementById('maint-global').checked`) {
		t.Fatal("the global switch is on while the API says off")
	}
	do(t, ctx, "add db3", chromedp.SendKeys(chromedp.CSS("#maint-add-name"), "db3"), chromedp.Click(chromedp.CSS("#maint-add")))
	until(t, ctx, "db3 in the editor", present(`#maint-machines li[data-machine="db3"]`))
	do(t, ctx, "add db4", chromedp.SendKeys(chromedp.CSS("#maint-add-name"), "db4"), chromedp.Click(chromedp.CSS("#maint-add")))
	until(t, ctx, "db4 in the editor", present(`#maint-machines li[data-machine="db4"]`))
	do(t, ctx, "remove db4", chromedp.Click(chromedp.CSS(`#maint-machines li[data-machine="db4"] .remove-machine`)))
	until(t, ctx, "db4 gone from the editor", `document.querySelector('#maint-machines li[data-machine="db4"]') === null`)
	do(t, ctx, "save", chromedp.Click(chromedp.CSS("#maint-save")))
	until(t, ctx, "db3 shown in force", textHas("#maint-machines-state", "db3"))
	if m := getMaint(); m.Global || len(m.Machines) != 1 || m.Machines[0] != "db3" || m.Source != "api" {
		t.Fatalf("maintenance after saving db3: %+v; want machines [db3], global off", m)
	}

	do(t, ctx, "back to the configuration", chromedp.Click(chromedp.CSS("#maint-reset")))
	until(t, ctx, "source shown as the configuration", textHas("#maint-source", "configuration"))
	until(t, ctx, "no machine shown", textHas("#maint-machines-state", "none"))
	if m := getMaint(); m.Global || len(m.Machines) != 0 || m.Source != "config" {
		t.Fatalf("maintenance after going back to the configuration: %+v", m)
	}
	if m := eval[string](t, ctx, `window.__uiTestMarker || ''`); m != "same page" {
		t.Fatalf("the page was reloaded: marker %q", m)
	}

	// The read token: a core whose configuration puts everything under
	// maintenance, so there is a state to see and a banner to show.
	digest := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	rc := startCore(t, coreBlock(fmt.Sprintf(`  api_tokens = [
    { name = "viewer", role = "read", sha256 = %q },
  ]`, digest("read-secret")))+`
maintenance {
  global   = true
  machines = ["db9"]
}
`+job("alpha", "true", ""))
	viewer := browser(t)
	do(t, viewer, "open the maintenance page", chromedp.Navigate(rc.url("/#/maintenance")))
	until(t, viewer, "sign-in form shown", present("#signin #token"))
	do(t, viewer, "sign in", chromedp.SendKeys(chromedp.CSS("#token"), "read-secret"), chromedp.Click(chromedp.CSS(`#signin button[type="submit"]`)))
	until(t, viewer, "signed in as viewer", textHas("#who", "viewer (read)"))
	until(t, viewer, "db9 shown", textHas("#maint-machines-state", "db9"))
	until(t, viewer, "global shown on", textHas("#maint-global-state", "on"))
	until(t, viewer, "source shown", textHas("#maint-source", "configuration"))
	until(t, viewer, "banner from the configuration", bannerShown)
	for _, sel := range []string{"#maint-editor", "#maint-global", "#maint-save", "#maint-reset", "main button", "main input"} {
		if eval[bool](t, viewer, present(sel)) {
			t.Errorf("read role sees %s", sel)
		}
	}
}

// TestUISurvivesCoreRestart: the core restarts under an open run page;
// the page (the same JavaScript context, no reload) reconnects its events
// socket, resumes the output where it stopped and shows the final status.
func TestUISurvivesCoreRestart(t *testing.T) {
	t.Parallel()
	gate := filepath.Join(t.TempDir(), "gate")
	c := startCore(t, restartableCore(t)+gatedJob("gated", gate, "before-restart", "after-restart"))
	id := c.runNow("gated")
	ctx := browser(t)
	do(t, ctx, "open the run page", chromedp.Navigate(c.url("/#/runs/"+id)))
	until(t, ctx, "first line shown", textHas("#output", "before-restart"))
	until(t, ctx, "events socket open", `document.getElementById('live').dataset.opens === '1'`)
	eval[string](t, ctx, `window.__uiTestMarker = 'same page'`)

	c.restart(syscall.SIGTERM)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, "events socket reopened", `Number(document.getElementById('live').dataset.opens) >= 2 && document.getElementById('live').dataset.state === 'open'`)
	until(t, ctx, "output after the restart shown", textHas("#output", "after-restart"))
	until(t, ctx, "final status shown", textHas("#run-status", "succeeded"))
	if m := eval[string](t, ctx, `window.__uiTestMarker || ''`); m != "same page" {
		t.Fatalf("the page was reloaded: marker %q", m)
	}
	// Resumed from the byte it reached: nothing twice, nothing lost.
	if out := eval[string](t, ctx, `document.getElementById('output').textContent`); out != "before-restart\nafter-restart\n" {
		t.Fatalf("output reads %q", out)
	}
}

// TestUIScreenshots writes the README's pictures of the jobs, job and run
// pages to docs/ when SALTPETER_UI_SCREENSHOTS is set; it checks only that
// each page drew what it is pictured with.
func TestUIScreenshots(t *testing.T) {
	if os.Getenv("SALTPETER_UI_SCREENSHOTS") == "" {
		t.Skip("set SALTPETER_UI_SCREENSHOTS=1 to write docs/ui-*.png")
	}
	gate := filepath.Join(t.TempDir(), "gate")
	sched := func(name, group, schedule, command string) string {
		return fmt.Sprintf(`
job %q {
  group    = %q
  schedule = %q
  command  = %q
  env = { PGHOST = "db1", PGPASSWORD = "secret" }
  target "local" {}
}
`, name, group, schedule, command)
	}
	c := startCore(t, coreBlock("")+
		sched("backup-db", "nightly", "0 3 * * *", `for i in 1 2 3 4 5 6; do echo "dumping table $i of 12"; done; while [ ! -e `+gate+` ]; do sleep 0.05; done`)+
		sched("rotate-logs", "nightly", "30 4 * * *", "echo rotated")+
		sched("report", "reports", "0 9 * * 1", "echo sent; exit 2")+
		sched("warm-cache", "web", "*/15 * * * *", "echo warm"))
	for _, j := range []string{"rotate-logs", "report", "warm-cache"} {
		c.waitFinal(c.runNow(j), 30*time.Second)
	}
	id := c.runNow("backup-db")
	ctx := browser(t)
	shot := func(name, hash, ready string) {
		t.Helper()
		do(t, ctx, "open "+hash, chromedp.Navigate(c.url("/"+hash)))
		until(t, ctx, name+" drawn", ready)
		until(t, ctx, "events socket open", `document.getElementById('live').dataset.state === 'open'`)
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shot("ui-jobs.png", "#/jobs", present(`#jobs tr[data-job="backup-db"] .running-run`))
	shot("ui-run.png", "#/runs/"+id, textHas("#output", "dumping table 6"))
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.waitFinal(id, 30*time.Second)
	shot("ui-job.png", "#/jobs/backup-db", textHas("#runs", "succeeded"))
}

// TestUIRunSignal: the run page shows each machine's wrapper version and
// sends a chosen signal, after a confirmation that names it and what
// receives it, to the whole run and to one machine; SIGKILL is not
// offered.
func TestUIRunSignal(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("trapper",
		`trap 'echo got-usr1' USR1; trap 'echo got-hup' HUP; echo started; while :; do sleep 0.1; done`, ""))
	id := c.runNow("trapper")
	c.waitRunning(id)
	host := hostname(t)
	var api struct {
		Machines []struct {
			WrapperVersion string `json:"wrapper_version"`
		} `json:"machines"`
	}
	c.call(http.MethodGet, "/api/v1/runs/"+id, nil, &api)
	if len(api.Machines) != 1 || api.Machines[0].WrapperVersion == "" {
		t.Fatalf("the API gives no wrapper version: %+v", api)
	}
	ctx := browser(t)
	do(t, ctx, "open the run page", chromedp.Navigate(c.url("/#/runs/"+id)))
	until(t, ctx, "job started", textHas("#output", "started"))
	until(t, ctx, "wrapper version shown", textHas(fmt.Sprintf(`#machines tr[data-machine=%q] .wrapper-version`, host), api.Machines[0].WrapperVersion))

	click(t, ctx, "#signal-run")
	until(t, ctx, "dialog open", `document.getElementById('confirm').open`)
	for _, want := range []string{"trapper", id, host} {
		if !eval[bool](t, ctx, textHas("#confirm", want)) {
			t.Fatalf("the dialog does not name %q: %s", want, eval[string](t, ctx, `document.getElementById('confirm').textContent`))
		}
	}
	offered := eval[[]string](t, ctx, `[...document.querySelectorAll('#confirm-signal option')].map((o) => o.value)`)
	for _, want := range []string{"SIGHUP", "SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGQUIT"} {
		if !slices.Contains(offered, want) {
			t.Errorf("signal %s not offered: %v", want, offered)
		}
	}
	if slices.Contains(offered, "SIGKILL") {
		t.Errorf("SIGKILL offered for signal: %v", offered)
	}
	choose(t, ctx, "#confirm-signal", "SIGUSR1")
	until(t, ctx, "the dialog names the chosen signal", textHas("#confirm-signal-name", "SIGUSR1"))
	if a := runActions(t, c, id); len(a) != 0 {
		t.Fatalf("actions before the dialog was answered: %+v", a)
	}
	do(t, ctx, "confirm", chromedp.Click(chromedp.CSS("#confirm-ok")))
	until(t, ctx, "the job got SIGUSR1", textHas("#output", "got-usr1"))
	if a := waitActions(t, c, id, 1); a[0].Kind != "signal" || a[0].Signal != "SIGUSR1" || a[0].Machine != "" {
		t.Fatalf("actions after signalling the run: %+v; want SIGUSR1 to the whole run", a)
	}

	click(t, ctx, fmt.Sprintf(`#machines tr[data-machine=%q] .signal-machine`, host))
	until(t, ctx, "dialog open", `document.getElementById('confirm').open`)
	until(t, ctx, "the dialog names the machine", textHas("#confirm-machines", host))
	choose(t, ctx, "#confirm-signal", "SIGHUP")
	do(t, ctx, "confirm", chromedp.Click(chromedp.CSS("#confirm-ok")))
	until(t, ctx, "the job got SIGHUP", textHas("#output", "got-hup"))
	if a := waitActions(t, c, id, 2); a[1].Kind != "signal" || a[1].Signal != "SIGHUP" || a[1].Machine != host {
		t.Fatalf("actions after signalling %s: %+v; want SIGHUP to it", host, a)
	}
	if r := c.run(id); r.Status != "running" {
		t.Fatalf("run %s after the signals the job traps, want running", r.Status)
	}
}

// TestUIKillOverride: the kill dialog is filled in with the job's kill
// policy; confirming it as it is kills with that policy (no override
// sent), and a changed signal and grace are sent for that kill only.
func TestUIKillOverride(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("trapper",
		`trap 'echo got-int; exit 3' INT; trap 'echo got-hup; exit 4' HUP; echo started; while :; do sleep 0.1; done`,
		"kill {\n    signal = \"SIGHUP\"\n    grace  = \"7s\"\n  }"))
	host := hostname(t)
	ctx := browser(t)
	policyShown := func() {
		t.Helper()
		until(t, ctx, "dialog open", `document.getElementById('confirm').open`)
		until(t, ctx, "the job's signal filled in", `document.getElementById('confirm-kill-signal').value === 'SIGHUP'`)
		if g := eval[string](t, ctx, `document.getElementById('confirm-kill-grace').value`); g != "7s" {
			t.Fatalf("grace filled in as %q, want the job's 7s", g)
		}
		if !eval[bool](t, ctx, textHas("#confirm-machines", host)) {
			t.Fatalf("the dialog does not name %s: %s", host, eval[string](t, ctx, `document.getElementById('confirm').textContent`))
		}
	}

	// As it is: the job's own policy.
	id := c.runNow("trapper")
	c.waitRunning(id)
	do(t, ctx, "open the run page", chromedp.Navigate(c.url("/#/runs/"+id)))
	until(t, ctx, "job started", textHas("#output", "started"))
	click(t, ctx, "#kill-run")
	policyShown()
	do(t, ctx, "confirm", chromedp.Click(chromedp.CSS("#confirm-ok")))
	if r := c.waitFinal(id, 30*time.Second); r.Status != "killed" {
		t.Fatalf("run %s after the kill, want killed", r.Status)
	}
	if a := runActions(t, c, id); len(a) != 1 || a[0].Kind != "kill" || a[0].Signal != "" || a[0].Grace != nil {
		t.Fatalf("actions after confirming the kill as it was: %+v; want one kill with the job's policy", a)
	}
	if out := c.output(id, host, "stdout"); !strings.Contains(out, "got-hup") {
		t.Fatalf("the job's policy signal SIGHUP did not reach it: %q", out)
	}

	// Changed: SIGINT, 20s, on one machine.
	id = c.runNow("trapper")
	c.waitRunning(id)
	do(t, ctx, "open the run page", chromedp.Navigate(c.url("/#/runs/"+id)))
	until(t, ctx, "job started", textHas("#output", "started"))
	click(t, ctx, fmt.Sprintf(`#machines tr[data-machine=%q] .kill-machine`, host))
	policyShown()
	choose(t, ctx, "#confirm-kill-signal", "SIGINT")
	do(t, ctx, "change the grace", chromedp.Clear(chromedp.CSS("#confirm-kill-grace")), chromedp.SendKeys(chromedp.CSS("#confirm-kill-grace"), "20s"))
	do(t, ctx, "confirm", chromedp.Click(chromedp.CSS("#confirm-ok")))
	if r := c.waitFinal(id, 30*time.Second); r.Status != "killed" {
		t.Fatalf("run %s after the kill, want killed", r.Status)
	}
	a := runActions(t, c, id)
	if len(a) != 1 || a[0].Kind != "kill" || a[0].Signal != "SIGINT" || a[0].Grace == nil || *a[0].Grace != "20s" || a[0].Machine != host {
		t.Fatalf("actions after the overridden kill: %+v; want SIGINT, grace 20s, on %s", a, host)
	}
	if out := c.output(id, host, "stdout"); !strings.Contains(out, "got-int") || strings.Contains(out, "got-hup") {
		t.Fatalf("the overriding SIGINT did not reach the job alone: %q", out)
	}
	until(t, ctx, "page shows killed", textHas("#run-status", "killed"))
}

// TestUIJobConfiguration: the job page shows every field of the job the
// API returns, env names without values; an override of enabled offers
// "Reset to configuration", which drops it.
func TestUIJobConfiguration(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+`
notifier "hook" {
  plugin = "webhook"
  config {
    url    = "http://127.0.0.1:9/hook"
    secret = "s"
  }
}

job "full" {
  group                = "nightly"
  schedule             = "0 3 * * *"
  timezone             = "Europe/Paris"
  command              = "echo full"
  env                  = { PGHOST = "db1", PGPASSWORD = "hunter2" }
  batch_size           = 2
  success              = "any"
  abort_after_failures = 3
  timeout              = "1h"
  soft_timeout         = "30m"
  no_output_timeout    = "10m"
  jitter               = "45s"
  catch_up             = "none"
  dst_gap              = "skip"
  keep_children        = true
  target "local" {}
  kill {
    signal = "SIGINT"
    grace  = "12s"
  }
  retry {
    attempts = 2
    backoff  = "90s"
  }
  expect {
    max_gap = "26h"
  }
  notify "hook" {
    on = ["failure", "missed"]
  }
}
`)
	var api map[string]any
	if st := c.call(http.MethodGet, "/api/v1/jobs/full", nil, &api); st != http.StatusOK {
		t.Fatalf("get job: status %d", st)
	}
	ctx := browser(t)
	do(t, ctx, "open the job page", chromedp.Navigate(c.url("/#/jobs/full")))
	until(t, ctx, "configuration shown", textHas("#settings", "echo full"))
	// Every field the API gives has its row, except those the page shows
	// elsewhere (the runs, the next fire times) or inside another row.
	elsewhere := []string{"name", "next_run", "running", "last_run", "enabled_in_config", "override_by", "override_at", "timezone"}
	for k := range api {
		if slices.Contains(elsewhere, k) {
			continue
		}
		if !eval[bool](t, ctx, present(fmt.Sprintf(`#settings dd[data-field=%q]`, k))) {
			t.Errorf("field %s (%v) not shown", k, api[k])
		}
	}
	for field, want := range map[string]string{
		"schedule": "Europe/Paris", "group": "nightly", "success": "any", "batch_size": "2",
		"abort_after_failures": "3", "timeout": "1h0m0s", "soft_timeout": "30m0s", "no_output_timeout": "10m0s",
		"jitter": "45s", "catch_up": "none", "dst_gap": "skip", "dst_repeat": "once", "keep_children": "yes",
		"kill": "SIGINT", "retry": "1m30s", "expect": "1d2h0m0s", "notify": "failure, missed", "target": "local",
		"number_of_targets": "all", "overlap": "skip",
	} {
		if !eval[bool](t, ctx, textHas(fmt.Sprintf(`#settings dd[data-field=%q]`, field), want)) {
			t.Errorf("%s does not read %q: %q", field, want, eval[string](t, ctx, fmt.Sprintf(`(document.querySelector('#settings dd[data-field=%q]') || {}).textContent || ''`, field)))
		}
	}
	if !eval[bool](t, ctx, textHas(`#settings dd[data-field="kill"]`, "12s")) || !eval[bool](t, ctx, textHas(`#settings dd[data-field="notify"]`, "hook")) {
		t.Errorf("kill or notify incomplete: %s", eval[string](t, ctx, `document.getElementById('settings').textContent`))
	}
	env := eval[string](t, ctx, `document.querySelector('#settings dd[data-field="env"]').textContent`)
	if env != "PGHOST, PGPASSWORD" {
		t.Errorf("environment reads %q, want the names alone", env)
	}
	if page := eval[string](t, ctx, `document.body.textContent`); strings.Contains(page, "hunter2") || strings.Contains(page, "***") {
		t.Errorf("an env value is on the page")
	}

	// The override: set, shown, reset.
	if eval[bool](t, ctx, present("#reset-enabled")) {
		t.Fatal("reset offered with no override")
	}
	click(t, ctx, "main button.toggle")
	until(t, ctx, "reset offered", present("#reset-enabled"))
	until(t, ctx, "the override shown", textHas(`#settings dd[data-field="enabled"]`, "set by local"))
	click(t, ctx, "#reset-enabled")
	until(t, ctx, "reset no longer offered", `document.getElementById('reset-enabled') === null`)
	until(t, ctx, "enabled shown from the configuration", `document.querySelector('#settings dd[data-field="enabled"]').textContent === 'yes'`)
	var after struct {
		Enabled    bool    `json:"enabled"`
		OverrideAt *string `json:"override_at"`
	}
	c.call(http.MethodGet, "/api/v1/jobs/full", nil, &after)
	if !after.Enabled || after.OverrideAt != nil {
		t.Fatalf("job after the reset: %+v; want enabled, no override", after)
	}
}

// TestUIJobRunsPaging: the job page lists its newest runs with their
// durations, and "Older runs" adds the next page, in the API's order
// and without repeats, until there is none.
func TestUIJobRunsPaging(t *testing.T) {
	t.Parallel()
	// overlap allow: a run reads as final a moment before the runner lets
	// the next one start, and "skip" would refuse it in that moment.
	c := startCore(t, coreBlock("")+job("quick", "true", `overlap = "allow"`))
	const runs = 23 // one page of 20 and a short one
	for range runs {
		c.waitFinal(c.runNow("quick"), 30*time.Second)
	}
	var api struct {
		Runs []struct {
			ID string `json:"id"`
		} `json:"runs"`
	}
	c.call(http.MethodGet, "/api/v1/runs?job=quick&limit=100", nil, &api)
	var want []string
	for _, r := range api.Runs {
		want = append(want, r.ID)
	}
	if len(want) != runs {
		t.Fatalf("the API lists %d runs, want %d", len(want), runs)
	}
	ctx := browser(t)
	do(t, ctx, "open the job page", chromedp.Navigate(c.url("/#/jobs/quick")))
	shownIDs := `[...document.querySelectorAll('#runs tr[data-run]')].map((r) => r.dataset.run)`
	until(t, ctx, "a page of runs", `document.querySelectorAll('#runs tr[data-run]').length === 20`)
	until(t, ctx, "older runs offered", present("#older-runs"))
	if got := eval[[]string](t, ctx, shownIDs); !slices.Equal(got, want[:20]) {
		t.Fatalf("first page %v, want %v", got, want[:20])
	}
	durations := eval[[]string](t, ctx, `[...document.querySelectorAll('#runs tr[data-run] .duration')].map((d) => d.textContent)`)
	for _, d := range durations {
		if d == "" || d[0] < '0' || d[0] > '9' {
			t.Fatalf("a finished run's duration reads %q: %v", d, durations)
		}
	}
	click(t, ctx, "#older-runs") // redrawn by a refresh, as the audit page's Older
	until(t, ctx, "every run", fmt.Sprintf(`document.querySelectorAll('#runs tr[data-run]').length === %d`, runs))
	if got := eval[[]string](t, ctx, shownIDs); !slices.Equal(got, want) {
		t.Fatalf("runs after paging %v, want %v", got, want)
	}
	until(t, ctx, "no older runs offered", `document.getElementById('older-runs') === null`)
	// A refresh (a new run's events) keeps the older runs it read.
	id := c.runNow("quick")
	c.waitFinal(id, 30*time.Second)
	until(t, ctx, "the new run listed first", fmt.Sprintf(`document.querySelector('#runs tr[data-run]').dataset.run === %q`, id))
	if n := eval[int](t, ctx, `document.querySelectorAll('#runs tr[data-run]').length`); n != runs+1 {
		t.Fatalf("%d runs listed after a refresh, want %d", n, runs+1)
	}
}

// TestUISignOut: signing out shows the sign-in form and closes the events
// socket, and the cookie is gone: a reload asks for a token again.
func TestUISignOut(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock(withTokens())+job("alpha", "true", ""))
	ctx := browser(t)
	do(t, ctx, "open the jobs page", chromedp.Navigate(c.url("/#/jobs")))
	signIn(t, ctx, operateSecret)
	until(t, ctx, "signed in", textHas("#who", "ops (operate)"))
	until(t, ctx, "events socket open", `document.getElementById('live').dataset.state === 'open'`)
	until(t, ctx, "sign-out shown", visible("#sign-out"))
	do(t, ctx, "sign out", chromedp.Click(chromedp.CSS("#sign-out")))
	until(t, ctx, "sign-in form shown", present("#signin #token"))
	until(t, ctx, "signed out said", textHas("#signin-note", "Signed out"))
	until(t, ctx, "events socket closed", `document.getElementById('live').dataset.state === 'closed' && document.getElementById('live').textContent === 'offline'`)
	if eval[string](t, ctx, `document.getElementById('who').textContent`) != "" || !eval[bool](t, ctx, `document.getElementById('sign-out').hidden`) {
		t.Fatal("still named as signed in")
	}
	do(t, ctx, "reload", chromedp.Reload())
	until(t, ctx, "sign-in form shown after a reload", present("#signin #token"))
	if eval[bool](t, ctx, present("#jobs")) {
		t.Fatal("the jobs page is shown after signing out")
	}
}

// TestUISessionExpiry: when the session stops being accepted under an
// open page, the page (no reload) falls back to the sign-in form with a
// message, and signing in again returns to the page it was on. Twice:
// the cookie is dropped and a change makes the page read again; the core
// restarts with a new secret under an idle page.
func TestUISessionExpiry(t *testing.T) {
	t.Parallel()
	c := startCore(t, fmt.Sprintf(`core {
  listen             = "127.0.0.1:%d"
  heartbeat_interval = "500ms"
  heartbeat_timeout  = "15s"
  connect_deadline   = "20s"
%s
}
`, freePort(t), withTokens())+job("alpha", "true", ""))
	ctx := browser(t)
	do(t, ctx, "open the job page", chromedp.Navigate(c.url("/#/jobs/alpha")))
	signIn(t, ctx, operateSecret)
	until(t, ctx, "job page shown", present("#settings dd"))
	until(t, ctx, "events socket open", `document.getElementById('live').dataset.state === 'open'`)
	eval[string](t, ctx, `window.__uiTestMarker = 'same page'`)
	expired := func() {
		t.Helper()
		until(t, ctx, "sign-in form shown", present("#signin #token"))
		until(t, ctx, "the reader told why", textHas("#signin-note", "session has ended"))
		if h := eval[string](t, ctx, `location.hash`); h != "#/jobs/alpha" {
			t.Fatalf("hash %q after the session ended", h)
		}
		until(t, ctx, "events socket closed", `document.getElementById('live').dataset.state === 'closed'`)
		signIn(t, ctx, operateSecret)
		until(t, ctx, "back on the job page", textHas("main h1", "alpha"))
		until(t, ctx, "the job read again", present("#settings dd"))
		until(t, ctx, "events socket open", `document.getElementById('live').dataset.state === 'open'`)
		if m := eval[string](t, ctx, `window.__uiTestMarker || ''`); m != "same page" {
			t.Fatalf("the page was reloaded: marker %q", m)
		}
	}

	// The cookie dropped behind the page's back; a run (by a script with
	// a token) makes the page read the job again.
	if st := fetchStatus(t, ctx, http.MethodDelete, "/api/v1/session"); st != http.StatusNoContent {
		t.Fatalf("DELETE session from the page: %d", st)
	}
	if eval[bool](t, ctx, present("#signin")) {
		t.Fatal("sign-in form shown before the page read anything")
	}
	var started struct {
		RunID string `json:"run_id"`
	}
	if st := bearer(t, c, operateSecret, http.MethodPost, "/api/v1/jobs/alpha/run", nil, &started); st != http.StatusAccepted {
		t.Fatalf("run alpha: status %d", st)
	}
	expired()

	// A new secret: every session made before is refused, and the page
	// learns it from its events socket alone.
	c.stop(syscall.SIGTERM)
	if err := os.Remove(filepath.Join(c.dir, "data", "secret")); err != nil {
		t.Fatalf("remove the site secret: %v", err)
	}
	c.launch()
	expired()
}

// TestUIAudit: the audit page lists operator actions, newest first, with
// who and how they ended: an operate token's kill and disable as ok, a
// read token's kill attempt as refused with its error; it filters by
// action and who, and pages to older entries.
func TestUIAudit(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock(withTokens())+job("sleeper", "echo started; sleep 300", "")+job("alpha", "true", ""))
	if st := bearer(t, c, readSecret, http.MethodGet, "/api/v1/audit?limit=1", nil, nil); st == http.StatusNotFound {
		t.Skip("the core has no GET /api/v1/audit yet")
	} else if st != http.StatusOK {
		t.Fatalf("GET /api/v1/audit with a read token: status %d", st)
	}
	var started struct {
		RunID string `json:"run_id"`
	}
	if st := bearer(t, c, operateSecret, http.MethodPost, "/api/v1/jobs/sleeper/run", nil, &started); st != http.StatusAccepted {
		t.Fatalf("run sleeper: status %d", st)
	}
	id := started.RunID

	ops := browser(t)
	do(t, ops, "open alpha's page", chromedp.Navigate(c.url("/#/jobs/alpha")))
	signIn(t, ops, operateSecret)
	until(t, ops, "disable offered", present("main button.toggle"))
	click(t, ops, "main button.toggle")
	until(t, ops, "alpha disabled", present("#reset-enabled"))
	do(t, ops, "open the run page", chromedp.Navigate(c.url("/#/runs/"+id)))
	until(t, ops, "kill offered", present("#kill-run"))
	click(t, ops, "#kill-run")
	until(t, ops, "dialog open", `document.getElementById('confirm').open && document.getElementById('confirm-kill-signal').value === 'SIGTERM'`)
	choose(t, ops, "#confirm-kill-signal", "SIGINT")
	do(t, ops, "confirm", chromedp.Click(chromedp.CSS("#confirm-ok")))
	until(t, ops, "run killed", textHas("#run-status", "killed"))

	viewer := browser(t)
	do(t, viewer, "open the jobs page", chromedp.Navigate(c.url("/#/jobs")))
	signIn(t, viewer, readSecret)
	until(t, viewer, "signed in as viewer", textHas("#who", "viewer (read)"))
	if st := fetchStatus(t, viewer, http.MethodPost, "/api/v1/runs/"+id+"/kill"); st != http.StatusForbidden {
		t.Fatalf("a read token's kill: status %d, want 403", st)
	}

	do(t, ops, "open the audit page", chromedp.Click(chromedp.CSS(`header a[href="#/audit"]`)))
	refused := `#audit tr[data-action="kill"][data-outcome="refused"]`
	until(t, ops, "the refused kill listed", present(refused))
	until(t, ops, "the refused kill by viewer", textHas(refused+" .by", "viewer"))
	until(t, ops, "the refused kill marked", `document.querySelector('`+refused+`').classList.contains('audit-refused') && document.querySelector('`+refused+` .audit-error').textContent.length > 0`)
	killed := `#audit tr[data-action="kill"][data-outcome="ok"]`
	until(t, ops, "the kill listed", textHas(killed+" .by", "ops"))
	until(t, ops, "the kill's run linked", present(killed+fmt.Sprintf(` a[href="#/runs/%s"]`, id)))
	disabled := `#audit tr[data-action="disable"][data-outcome="ok"]`
	until(t, ops, "the disable listed", textHas(disabled+" .by", "ops"))
	until(t, ops, "the disable's job linked", present(disabled+` a[href="#/jobs/alpha"]`))
	order := eval[[]string](t, ops, `[...document.querySelectorAll('#audit tr[data-id]')].map((r) => r.dataset.action + '/' + r.dataset.outcome)`)
	if i, j, k := slices.Index(order, "kill/refused"), slices.Index(order, "kill/ok"), slices.Index(order, "disable/ok"); i < 0 || j < 0 || k < 0 || i > j || j > k {
		t.Fatalf("entries not newest first: %v", order)
	}

	choose(t, ops, "#audit-action", "disable")
	until(t, ops, "only disables", `[...document.querySelectorAll('#audit tr[data-id]')].every((r) => r.dataset.action === 'disable') && document.querySelector('#audit tr[data-id]') !== null`)
	choose(t, ops, "#audit-action", "")
	do(t, ops, "filter by who", chromedp.SendKeys(chromedp.CSS("#audit-by"), "viewer"), chromedp.Click(chromedp.CSS("#audit-apply")))
	until(t, ops, "only the viewer's", `[...document.querySelectorAll('#audit tr[data-id] .by')].every((b) => b.textContent === 'viewer') && document.querySelector('#audit tr[data-id]') !== null`)
	eval[string](t, ops, `document.getElementById('audit-by').value = ''`)
	do(t, ops, "clear the filter", chromedp.Click(chromedp.CSS("#audit-apply")))
	until(t, ops, "everyone's again", `[...document.querySelectorAll('#audit tr[data-id] .by')].some((b) => b.textContent === 'ops')`)

	// More than a page: "Older" reads on from where it stopped.
	for i := range 60 {
		verb := []string{"enable", "disable"}[i%2]
		if st := bearer(t, c, operateSecret, http.MethodPost, "/api/v1/jobs/alpha/"+verb, nil, nil); st != http.StatusOK {
			t.Fatalf("%s alpha: status %d", verb, st)
		}
	}
	// A page open while they happened may have folded them all in (a
	// live refresh keeps what is shown), leaving nothing older; a page
	// opened now reads one page of them.
	do(t, ops, "reload the audit page", chromedp.Reload())
	until(t, ops, "a page of the newest", `document.querySelectorAll('#audit tr[data-id]').length === 50`)
	until(t, ops, "older offered", present("#audit-older"))
	before := eval[int](t, ops, `document.querySelectorAll('#audit tr[data-id]').length`)
	// A refresh redraws the button (it leaves the page and comes back),
	// which would lose chromedp.Click's node.
	click(t, ops, "#audit-older")
	until(t, ops, "older entries added", fmt.Sprintf(`document.querySelectorAll('#audit tr[data-id]').length > %d`, before))
	until(t, ops, "the first disable reached", present(disabled+` a[href="#/jobs/alpha"]`))
	ids := eval[[]int](t, ops, `[...document.querySelectorAll('#audit tr[data-id]')].map((r) => Number(r.dataset.id))`)
	for i := 1; i < len(ids); i++ {
		if ids[i] >= ids[i-1] {
			t.Fatalf("entries not newest first, or repeated, after paging: %v", ids)
		}
	}
}

// TestUIPhoneWidth: at a phone's width (390×844) no page scrolls
// sideways and each page's primary actions lie within the screen.
func TestUIPhoneWidth(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("a-job-with-a-rather-long-name-for-a-phone", "echo started; sleep 300",
		"group = \"nightly-maintenance-and-reporting\"\n  env = { A_VARIABLE_NAME_FAR_TOO_LONG_FOR_ONE_LINE_OF_A_PHONE_SCREEN_AT_ALL = \"x\", B = \"y\" }"))
	name := "a-job-with-a-rather-long-name-for-a-phone"
	id := c.runNow(name)
	c.waitRunning(id)
	ctx := browser(t)
	do(t, ctx, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateTouch))
	noSideways := `document.documentElement.scrollWidth <= document.documentElement.clientWidth`
	for _, p := range []struct {
		hash, ready string
		actions     []string
	}{
		{"#/jobs", present(`#jobs tr[data-job]`), []string{"#filter", `#jobs tr[data-job] button.toggle`, `#jobs tr[data-job] a`, `header a[href="#/audit"]`}},
		{"#/jobs/" + name, present("#settings dd"), []string{"#run-now", "main button.toggle", "#runs tr[data-run] a"}},
		{"#/runs/" + id, textHas("#output", "started"), []string{"#kill-run", "#pause", "#resume", "#signal-run", ".kill-machine", ".signal-machine", "#output"}},
		{"#/maintenance", present("#maint-add-name"), []string{"#maint-global", "#maint-add-name", "#maint-add", "#maint-save", "#maint-reset"}},
		{"#/audit", `document.querySelector('#audit tr') !== null || document.getElementById('audit-note').textContent !== ''`, []string{"#audit-job", "#audit-by", "#audit-action", "#audit-apply", "#audit-refresh"}},
	} {
		do(t, ctx, "open "+p.hash, chromedp.Navigate(c.url("/"+p.hash)))
		until(t, ctx, p.hash+" drawn", p.ready)
		until(t, ctx, "events socket open", `document.getElementById('live').dataset.state === 'open'`)
		if !eval[bool](t, ctx, noSideways) {
			t.Errorf("%s scrolls sideways: %s", p.hash, eval[string](t, ctx, `document.documentElement.scrollWidth + ' > ' + document.documentElement.clientWidth + '; widest: ' +
				[...document.querySelectorAll('main *')].filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth).slice(0, 5).map((e) => e.tagName + '#' + e.id + '.' + e.className).join(', ')`))
		}
		for _, sel := range p.actions {
			if !eval[bool](t, ctx, visible(sel)) {
				t.Errorf("%s: %s is not within the screen", p.hash, sel)
			}
		}
	}
	// The kill dialog, with its fields, fits too.
	do(t, ctx, "open the run page", chromedp.Navigate(c.url("/#/runs/"+id)))
	until(t, ctx, "kill offered", present("#kill-run"))
	click(t, ctx, "#kill-run")
	until(t, ctx, "dialog open", `document.getElementById('confirm').open && document.getElementById('confirm-kill-grace') !== null`)
	for _, sel := range []string{"#confirm", "#confirm-kill-signal", "#confirm-kill-grace", "#confirm-ok", "#confirm-cancel"} {
		if !eval[bool](t, ctx, visible(sel)) {
			t.Errorf("kill dialog: %s is not within the screen", sel)
		}
	}
	if !eval[bool](t, ctx, noSideways) {
		t.Error("the kill dialog makes the page scroll sideways")
	}
	do(t, ctx, "cancel", chromedp.Click(chromedp.CSS("#confirm-cancel")))
}

// scheduled is a job on the local target with a schedule of its own.
func scheduled(name, schedule, command, extra string) string {
	return fmt.Sprintf(`
job %q {
  schedule = %q
  command  = %q
  target "local" {}
%s
}
`, name, schedule, command, extra)
}

// shownJobs is an expression: the jobs page's rows, in order, comma-joined.
const shownJobs = `[...document.querySelectorAll('#jobs tr[data-job]')].map((r) => r.dataset.job).join(',')`

// showsJobs is a condition: the jobs page lists exactly these, in order.
func showsJobs(names ...string) string {
	return fmt.Sprintf(`%s === %q`, shownJobs, strings.Join(names, ","))
}

// TestUIJobsFilter: the jobs page filters by group and by status (the
// last run's, running now, never run, disabled), from the hash it is
// opened with and from its selects, which write the hash back; the
// filters hold over a redraw by a live event and over a reload.
func TestUIJobsFilter(t *testing.T) {
	t.Parallel()
	gate := filepath.Join(t.TempDir(), "gate")
	c := startCore(t, coreBlock("")+
		job("alpha", "true", `group = "db"`)+
		job("bravo", "exit 3", `group = "db"`)+
		job("charlie", "true", "group = \"web\"\n  enabled = false")+
		job("delta", "true", `group = "web"`)+
		job("echo", fmt.Sprintf(`while [ ! -e %s ]; do sleep 0.05; done`, gate), `group = "web"`))
	t.Cleanup(func() { _ = os.WriteFile(gate, nil, 0o644) })
	c.waitFinal(c.runNow("alpha"), 30*time.Second)
	c.waitFinal(c.runNow("bravo"), 30*time.Second)
	c.waitRunning(c.runNow("echo"))

	ctx := browser(t)
	do(t, ctx, "open the jobs page filtered", chromedp.Navigate(c.url("/#/jobs?group=db&status=failed")))
	until(t, ctx, "only db's failed job", showsJobs("bravo"))
	if g, s := eval[string](t, ctx, `document.getElementById('filter-group').value`), eval[string](t, ctx, `document.getElementById('filter-status').value`); g != "db" || s != "failed" {
		t.Fatalf("the selects read group %q, status %q; want the hash's db, failed", g, s)
	}
	until(t, ctx, "the count said", textHas("#jobs-count", "1 of 5 jobs"))

	for _, step := range []struct {
		sel, value string
		want       []string
		hash       string
	}{
		{"#filter-status", "", []string{"alpha", "bravo"}, "#/jobs?group=db"},
		{"#filter-group", "web", []string{"charlie", "delta", "echo"}, "#/jobs?group=web"},
		{"#filter-status", "never", []string{"charlie", "delta"}, "#/jobs?group=web&status=never"},
		{"#filter-status", "disabled", []string{"charlie"}, "#/jobs?group=web&status=disabled"},
		{"#filter-status", "running", []string{"echo"}, "#/jobs?group=web&status=running"},
		{"#filter-group", "", []string{"echo"}, "#/jobs?status=running"},
		{"#filter-status", "succeeded", []string{"alpha"}, "#/jobs?status=succeeded"},
		{"#filter-status", "failed", []string{"bravo"}, "#/jobs?status=failed"},
		{"#filter-status", "", []string{"alpha", "bravo", "charlie", "delta", "echo"}, "#/jobs"},
		{"#filter-group", "db", []string{"alpha", "bravo"}, "#/jobs?group=db"},
	} {
		choose(t, ctx, step.sel, step.value)
		until(t, ctx, fmt.Sprintf("%s = %q lists %v", step.sel, step.value, step.want), showsJobs(step.want...))
		if h := eval[string](t, ctx, `location.hash`); h != step.hash {
			t.Fatalf("%s = %q: hash %q, want %q", step.sel, step.value, h, step.hash)
		}
	}
	groups := eval[[]string](t, ctx, `[...document.querySelectorAll('#filter-group option')].map((o) => o.value)`)
	if !slices.Equal(groups, []string{"", "db", "web"}) {
		t.Fatalf("groups offered %q, want all, db, web", groups)
	}

	// A live event redraws the list: the filters hold.
	eval[string](t, ctx, `window.__uiTestMarker = 'same page'`)
	do(t, ctx, "search", chromedp.SendKeys(chromedp.CSS("#filter"), "alp"))
	until(t, ctx, "alpha alone", showsJobs("alpha"))
	until(t, ctx, "the search in the hash", `location.hash === '#/jobs?q=alp&group=db'`)
	id := c.runNow("alpha")
	c.waitFinal(id, 30*time.Second)
	until(t, ctx, "alpha's new run shown", present(fmt.Sprintf(`#jobs tr[data-job="alpha"] a[href="#/runs/%s"]`, id)))
	if got := eval[string](t, ctx, shownJobs); got != "alpha" {
		t.Fatalf("after a redraw the page lists %q, want alpha alone", got)
	}
	if g, q := eval[string](t, ctx, `document.getElementById('filter-group').value`), eval[string](t, ctx, `document.getElementById('filter').value`); g != "db" || q != "alp" {
		t.Fatalf("after a redraw the filters read group %q, search %q", g, q)
	}
	if m := eval[string](t, ctx, `window.__uiTestMarker || ''`); m != "same page" {
		t.Fatalf("the page was reloaded: marker %q", m)
	}
	// A reload (a shared link) opens the same view.
	do(t, ctx, "reload", chromedp.Reload())
	until(t, ctx, "alpha alone after a reload", showsJobs("alpha"))
	if q := eval[string](t, ctx, `document.getElementById('filter').value`); q != "alp" {
		t.Fatalf("after a reload the search reads %q", q)
	}
	click(t, ctx, "#filter-clear")
	until(t, ctx, "every job after clearing", showsJobs("alpha", "bravo", "charlie", "delta", "echo"))
	until(t, ctx, "the hash cleared", `location.hash === '#/jobs'`)
}

// TestUIJobsSort: the jobs page sorts by a column whose header is
// clicked, and reverses on a second click, with aria-sort on that header:
// by name, and by next run (jobs with none last either way); the sort
// holds over a redraw and a reload.
func TestUIJobsSort(t *testing.T) {
	t.Parallel()
	// Quarterly, so that no job fires during the test and none ties.
	c := startCore(t, coreBlock("")+
		scheduled("apple", "0 0 1 10 *", "true", "")+
		scheduled("banana", "0 0 1 4 *", "true", "")+
		job("cherry", "true", "")+
		scheduled("damson", "0 0 1 7 *", "true", `timezone = "America/Chicago"`)+
		scheduled("elder", "0 0 1 1 *", "true", `timezone = "Asia/Tokyo"`))
	var api struct {
		Jobs []struct {
			Name    string  `json:"name"`
			NextRun *string `json:"next_run"`
		} `json:"jobs"`
	}
	if st := c.call(http.MethodGet, "/api/v1/jobs", nil, &api); st != http.StatusOK {
		t.Fatalf("list jobs: %d", st)
	}
	type next struct {
		name string
		at   time.Time
	}
	var timed []next
	var unscheduled []string
	for _, j := range api.Jobs {
		if j.NextRun == nil {
			unscheduled = append(unscheduled, j.Name)
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, *j.NextRun)
		if err != nil {
			t.Fatalf("%s: next_run %q: %v", j.Name, *j.NextRun, err)
		}
		timed = append(timed, next{j.Name, at})
	}
	if len(timed) != 4 || !slices.Equal(unscheduled, []string{"cherry"}) {
		t.Fatalf("next runs %v, unscheduled %v; want four and cherry", timed, unscheduled)
	}
	slices.SortFunc(timed, func(a, b next) int { return a.at.Compare(b.at) })
	var soonest []string
	for _, n := range timed {
		soonest = append(soonest, n.name)
	}
	latest := slices.Clone(soonest)
	slices.Reverse(latest)
	soonest, latest = append(soonest, "cherry"), append(latest, "cherry")

	ctx := browser(t)
	do(t, ctx, "open the jobs page", chromedp.Navigate(c.url("/#/jobs")))
	byName := []string{"apple", "banana", "cherry", "damson", "elder"}
	byNameDesc := slices.Clone(byName)
	slices.Reverse(byNameDesc)
	until(t, ctx, "by name at first", showsJobs(byName...))
	sortedBy := func(key, dir string) {
		t.Helper()
		got := eval[[]string](t, ctx, `[...document.querySelectorAll('thead th[aria-sort]')].map((th) => th.dataset.sort + ' ' + th.getAttribute('aria-sort'))`)
		if want := key + " " + dir; len(got) != 1 || got[0] != want {
			t.Fatalf("aria-sort on %q, want on %q alone", got, want)
		}
	}
	sortedBy("name", "ascending")
	for _, step := range []struct {
		key, dir, hash string
		want           []string
	}{
		{"name", "descending", "#/jobs?sort=name&dir=desc", byNameDesc},
		{"name", "ascending", "#/jobs", byName},
		{"next", "ascending", "#/jobs?sort=next&dir=asc", soonest},
		{"next", "descending", "#/jobs?sort=next&dir=desc", latest},
	} {
		click(t, ctx, fmt.Sprintf(`thead th[data-sort=%q] button`, step.key))
		until(t, ctx, fmt.Sprintf("by %s %s: %v", step.key, step.dir, step.want), showsJobs(step.want...))
		sortedBy(step.key, step.dir)
		if h := eval[string](t, ctx, `location.hash`); h != step.hash {
			t.Fatalf("by %s %s: hash %q, want %q", step.key, step.dir, h, step.hash)
		}
	}

	// A run's events redraw the list; the order holds.
	id := c.runNow(soonest[1])
	c.waitFinal(id, 30*time.Second)
	until(t, ctx, "the run shown", present(fmt.Sprintf(`#jobs a[href="#/runs/%s"]`, id)))
	if got := eval[string](t, ctx, shownJobs); got != strings.Join(latest, ",") {
		t.Fatalf("after a redraw the order is %q, want %v", got, latest)
	}
	do(t, ctx, "reload", chromedp.Reload())
	until(t, ctx, "the same order after a reload", showsJobs(latest...))
	sortedBy("next", "descending")
}

// zoneReader makes the page's reader one in zone, whose dates read as in
// Britain (day first, 24-hour clock), so that times have one spelling.
func zoneReader(t *testing.T, ctx context.Context, zone string) {
	t.Helper()
	do(t, ctx, "the reader in "+zone, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: zone}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, emulation.SetLocaleOverride, emulation.SetLocaleOverrideParams{Locale: "en_GB"})
		return err
	}))
}

// zonedText is how the page writes an instant for a reader in reader's
// zone (en-GB): the reader's time, and the part in the job's zone ("" when
// it reads the same), its date only if another day there.
func zonedText(t *testing.T, iso string, reader, zone *time.Location) (here, there string) {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, iso)
	if err != nil {
		t.Fatalf("parse %q: %v", iso, err)
	}
	const full = "02/01/2006, 15:04:05"
	a, b := at.In(reader), at.In(zone)
	if a.Format(full) == b.Format(full) {
		return a.Format(full), ""
	}
	if a.Format("2006-01-02") == b.Format("2006-01-02") {
		return a.Format(full), fmt.Sprintf("(%s %s)", b.Format("15:04:05"), zone)
	}
	return a.Format(full), fmt.Sprintf("(%s %s)", b.Format(full), zone)
}

// TestUIJobZones: next runs read in the reader's zone (Tokyo here) and,
// for a job scheduled in another zone, in that zone too, on the jobs page
// and on the job page's next fire times, which keep their DST flags.
func TestUIJobZones(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+
		scheduled("chicago", "0 3 * * *", "true", `timezone = "America/Chicago"`)+
		scheduled("tokyo", "0 3 * * *", "true", `timezone = "Asia/Tokyo"`)+
		scheduled("utc", "0 3 * * *", "true", "")+
		// Sundays of March at 02:30: one of them falls in the spring gap.
		scheduled("spring", "30 2 * 3 0", "true", `timezone = "America/Chicago"`))
	load := func(name string) *time.Location {
		t.Helper()
		l, err := time.LoadLocation(name)
		if err != nil {
			t.Fatalf("load zone %s: %v", name, err)
		}
		return l
	}
	tokyo := load("Asia/Tokyo")
	var api struct {
		Jobs []struct {
			Name     string `json:"name"`
			Timezone string `json:"timezone"`
			NextRun  string `json:"next_run"`
		} `json:"jobs"`
	}
	if st := c.call(http.MethodGet, "/api/v1/jobs", nil, &api); st != http.StatusOK {
		t.Fatalf("list jobs: %d", st)
	}

	ctx := browser(t)
	zoneReader(t, ctx, "Asia/Tokyo")
	do(t, ctx, "open the jobs page", chromedp.Navigate(c.url("/#/jobs")))
	if z := eval[string](t, ctx, `Intl.DateTimeFormat().resolvedOptions().timeZone`); z != "Asia/Tokyo" {
		t.Fatalf("the browser's zone is %q", z)
	}
	until(t, ctx, "every job listed", `document.querySelectorAll('#jobs tr[data-job]').length === 4`)
	for _, j := range api.Jobs {
		zone := j.Timezone
		if zone == "" {
			zone = "UTC"
		}
		here, there := zonedText(t, j.NextRun, tokyo, load(zone))
		if (there == "") != (j.Name == "tokyo") {
			t.Fatalf("%s in %s: expected %q %q", j.Name, zone, here, there)
		}
		cell := fmt.Sprintf(`#jobs tr[data-job=%q] .next-run`, j.Name)
		if got := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('%s time').textContent`, cell)); got != here {
			t.Errorf("%s: next run reads %q for a reader in Tokyo, want %q", j.Name, got, here)
		}
		if got := eval[string](t, ctx, fmt.Sprintf(`(document.querySelector('%s .job-zone') || {}).textContent || ''`, cell)); got != there {
			t.Errorf("%s: the job's zone part reads %q, want %q", j.Name, got, there)
		}
	}
	if got := eval[string](t, ctx, `document.querySelector('#jobs tr[data-job="chicago"] .job-zone').textContent`); got != "(03:00:00 America/Chicago)" {
		t.Errorf("chicago's zone part reads %q", got)
	}

	var fires struct {
		Timezone string `json:"timezone"`
		Fires    []struct {
			At            string `json:"at"`
			DSTTransition bool   `json:"dst_transition"`
			DST           string `json:"dst"`
		} `json:"fires"`
	}
	if st := c.call(http.MethodGet, "/api/v1/jobs/spring/next?count=5", nil, &fires); st != http.StatusOK || len(fires.Fires) != 5 {
		t.Fatalf("next fires of spring: %d %+v", st, fires)
	}
	do(t, ctx, "open spring's page", chromedp.Click(chromedp.CSS(`#jobs tr[data-job="spring"] a`)))
	until(t, ctx, "the fire times listed", `document.querySelectorAll('#next li .job-zone').length === 5`)
	chicago := load("America/Chicago")
	flagged := 0
	for i, f := range fires.Fires {
		here, there := zonedText(t, f.At, tokyo, chicago)
		li := fmt.Sprintf(`#next li:nth-child(%d)`, i+1)
		if got := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('%s time').textContent`, li)); got != here {
			t.Errorf("fire %d reads %q, want %q", i, got, here)
		}
		if got := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('%s .job-zone').textContent`, li)); got != there {
			t.Errorf("fire %d: the job's zone part reads %q, want %q", i, got, there)
		}
		dst := eval[string](t, ctx, fmt.Sprintf(`(document.querySelector('%s .dst') || {}).textContent || ''`, li))
		if flag := f.DSTTransition || f.DST != ""; flag != strings.Contains(dst, "DST") {
			t.Errorf("fire %d (%+v): DST flag reads %q", i, f, dst)
		} else if flag {
			flagged++
		}
	}
	if flagged == 0 {
		t.Fatalf("no fire of spring is DST-flagged: %+v", fires.Fires)
	}
}

// TestUIMachineChips: the jobs page shows each machine's result in a
// job's last run as a chip named for it (title and screen-reader text:
// machine, status, exit code), and past the 50 the API lists, the rest
// as counts; at a phone's width a run of many machines reads as counts
// and the row stays within the screen.
func TestUIMachineChips(t *testing.T) {
	t.Parallel()
	var wide []string
	for i := range 55 {
		wide = append(wide, fmt.Sprintf("w%02d", i+1))
	}
	machines, err := json.Marshal(wide)
	if err != nil {
		t.Fatal(err)
	}
	c := startCore(t, coreBlock("")+fmt.Sprintf(`
plugin "target" "simfleet" {
  path = %q
  config {
    wrapper = %q
  }
}

job "mixed" {
  schedule = "@manually"
  command  = "case $SP_MACHINE_ID in sim1) exit 0 ;; sim2) exit 3 ;; *) sleep 30 ;; esac"
  timeout  = "1s"
  target "simfleet" {
    machines = ["sim1", "sim2", "sim3"]
  }
}

job "wide" {
  schedule   = "@manually"
  command    = "true"
  # In batches, so that a loaded test machine starts every wrapper
  # within the connect deadline.
  batch_size = 20
  target "simfleet" {
    machines = %s
  }
}
`, filepath.Join(binDir, "simfleet"), filepath.Join(binDir, "saltpeter-wrapper"), machines))
	if r := c.waitFinal(c.runNow("mixed"), 30*time.Second); r.Status != "timeout" || len(r.Machines) != 3 {
		t.Fatalf("mixed run: %+v; want timeout over 3 machines", r)
	}
	if r := c.waitFinal(c.runNow("wide"), 90*time.Second); r.Status != "succeeded" || len(r.Machines) != 55 {
		t.Fatalf("wide run %s on %d machines, want succeeded on 55", r.Status, len(r.Machines))
	}
	var api struct {
		Jobs []struct {
			Name    string `json:"name"`
			LastRun struct {
				Machines []struct {
					Machine  string `json:"machine"`
					Status   string `json:"status"`
					ExitCode *int   `json:"exit_code"`
				} `json:"machines"`
			} `json:"last_run"`
		} `json:"jobs"`
	}
	c.call(http.MethodGet, "/api/v1/jobs", nil, &api)

	ctx := browser(t)
	do(t, ctx, "open the jobs page", chromedp.Navigate(c.url("/#/jobs")))
	mixed := `#jobs tr[data-job="mixed"]`
	until(t, ctx, "mixed's chips", fmt.Sprintf(`document.querySelectorAll('%s .chip').length === 3`, mixed))
	statuses := map[string]bool{}
	for _, j := range api.Jobs {
		if j.Name != "mixed" {
			continue
		}
		for _, m := range j.LastRun.Machines {
			statuses[m.Status] = true
			want := fmt.Sprintf("%s: %s, exit %d", m.Machine, m.Status, deref(m.ExitCode))
			chip := fmt.Sprintf(`%s .chip[data-machine=%q]`, mixed, m.Machine)
			got := eval[[]string](t, ctx, fmt.Sprintf(`(() => { const c = document.querySelector('%s'); return c ? [c.title, c.textContent, c.className] : []; })()`, chip))
			if len(got) != 3 || got[0] != want || !strings.HasPrefix(got[1], want) || !strings.Contains(got[2], "status-"+m.Status) {
				t.Errorf("chip of %s: %q; want title and text %q, class status-%s", m.Machine, got, want, m.Status)
			}
		}
	}
	if len(statuses) != 3 {
		t.Fatalf("mixed's machines ended %v, want three different statuses", statuses)
	}
	colours := eval[[]string](t, ctx, fmt.Sprintf(`[...document.querySelectorAll('%s .chip')].map((c) => getComputedStyle(c).backgroundColor)`, mixed))
	if colours[0] == colours[1] || colours[0] == "rgba(0, 0, 0, 0)" {
		t.Errorf("succeeded and failed chips are coloured %q", colours)
	}
	if eval[bool](t, ctx, present(mixed+" .machines-more")) {
		t.Error("a run of 3 machines says there are more")
	}
	wideRow := `#jobs tr[data-job="wide"]`
	until(t, ctx, "the first 50 of wide's chips", fmt.Sprintf(`document.querySelectorAll('%s .chip').length === 50`, wideRow))
	until(t, ctx, "the rest counted", textHas(wideRow+" .machines-more", "+ 5 more: 5 succeeded"))

	// A phone: the wide run reads as counts, and nothing leaves the screen.
	do(t, ctx, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateTouch))
	do(t, ctx, "reload", chromedp.Reload())
	until(t, ctx, "wide's counts shown", visible(wideRow+" .machines-summary"))
	if got := eval[string](t, ctx, `document.querySelector('`+wideRow+` .machines-summary').textContent`); got != "55 succeeded" {
		t.Errorf("wide's summary reads %q", got)
	}
	if eval[bool](t, ctx, visible(wideRow+" .chips")) || eval[bool](t, ctx, visible(wideRow+" .machines-more")) {
		t.Error("wide's 50 chips shown on a phone")
	}
	until(t, ctx, "mixed's chips on a phone", visible(mixed+" .chip"))
	if !eval[bool](t, ctx, `document.documentElement.scrollWidth <= document.documentElement.clientWidth`) {
		t.Error("the jobs page scrolls sideways on a phone")
	}
	for _, sel := range []string{wideRow + " button.toggle", mixed + " button.toggle", wideRow + " a", "#filter", "#filter-group", "#filter-status"} {
		if !eval[bool](t, ctx, visible(sel)) {
			t.Errorf("%s is not within the screen", sel)
		}
	}
	if hgt := eval[float64](t, ctx, `document.querySelector('`+wideRow+`').getBoundingClientRect().height`); hgt > 90 {
		t.Errorf("wide's row is %.0fpx high on a phone", hgt)
	}
}
