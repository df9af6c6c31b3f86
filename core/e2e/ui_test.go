package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
	do(t, viewer, "open the job page", chromedp.Navigate(c.url("/#/jobs/sleeper")))
	until(t, viewer, "job settings shown", textHas("#settings", "sleep 300"))
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
