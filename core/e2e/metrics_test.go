package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMetricsAfterSomeRuns scrapes /metrics after two successes, a
// failure and a kill, with the real wrapper, and a scheduled run: runs by
// status, the failed machine's exit code, the kill's latency, the
// scheduled run's lag, store writes and the plugin's start are there.
func TestMetricsAfterSomeRuns(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("ok", "true", "")+job("bad", "exit 7", "")+
		job("long", "echo ready; while :; do sleep 0.05; done", `overlap = "allow"`)+`
job "tick" {
  schedule = "@every 1s"
  command  = "true"
  target "local" {}
}
`)
	for _, name := range []string{"ok", "ok", "bad"} {
		c.waitFinal(c.runNow(name), 30*time.Second)
	}
	id := c.runNow("long")
	c.followUntil(id, hostname(t), "ready")
	if st := c.call(http.MethodPost, "/api/v1/runs/"+id+"/kill", nil, nil); st != http.StatusAccepted {
		t.Fatalf("kill: %d", st)
	}
	if r := c.waitFinal(id, 30*time.Second); r.Status != "killed" {
		t.Fatalf("killed run: %s", r.Status)
	}

	scrape := func() string {
		t.Helper()
		resp, err := c.http().Get(c.url("/metrics"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("scrape: %d %v", resp.StatusCode, err)
		}
		return string(body)
	}
	firedRE := regexp.MustCompile(`(?m)^saltpeter_fire_lag_seconds_count [1-9]`)
	text := scrape()
	for deadline := time.Now().Add(30 * time.Second); !firedRE.MatchString(text); text = scrape() {
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled run's lag in 30 s:\n%s", text)
		}
		time.Sleep(50 * time.Millisecond)
	}
	value := func(series string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("no series %s in:\n%s", series, text)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	host := hostname(t)
	checks := []struct {
		series string
		ok     func(float64) bool
		want   string
	}{
		{`saltpeter_runs_total{job="ok",status="succeeded"}`, func(v float64) bool { return v == 2 }, "2"},
		{`saltpeter_runs_total{job="bad",status="failed"}`, func(v float64) bool { return v == 1 }, "1"},
		{`saltpeter_runs_total{job="long",status="killed"}`, func(v float64) bool { return v == 1 }, "1"},
		{fmt.Sprintf(`saltpeter_machine_last_exit_code{job="bad",machine=%q}`, host), func(v float64) bool { return v == 7 }, "7"},
		{fmt.Sprintf(`saltpeter_machine_last_success_timestamp_seconds{job="ok",machine=%q}`, host),
			func(v float64) bool { return time.Since(time.Unix(int64(v), 0)) < time.Minute }, "within the last minute"},
		{`saltpeter_kill_latency_seconds_count`, func(v float64) bool { return v == 1 }, "1"},
		// A run is recorded within a second of its slot on an idle core.
		{`saltpeter_fire_lag_seconds_bucket{le="1"}`, func(v float64) bool { return v >= 1 }, "at least 1"},
		{`saltpeter_run_duration_seconds_count{job="ok"}`, func(v float64) bool { return v == 2 }, "2"},
		{`saltpeter_store_write_seconds_count{op="append_output"}`, func(v float64) bool { return v >= 1 }, "at least 1"},
		{`saltpeter_plugin_starts_total{kind="target",name="local"}`, func(v float64) bool { return v >= 1 }, "at least 1"},
	}
	for _, ck := range checks {
		if v := value(ck.series); !ck.ok(v) {
			t.Errorf("%s = %v, want %s", ck.series, v, ck.want)
		}
	}
	if !strings.Contains(text, "saltpeter_connected_wrappers ") || !strings.Contains(text, "saltpeter_running_machines ") {
		t.Error("the hub's gauges are missing")
	}
}
