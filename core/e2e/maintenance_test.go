package e2e

import (
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestMaintenanceOverridesSurviveRestarts: machines put under maintenance
// through the API are left out of runs (a run with none left is skipped),
// global maintenance refuses a manual run, the override survives a
// SIGKILL of the core, and resetting it brings the HCL's back.
func TestMaintenanceOverridesSurviveRestarts(t *testing.T) {
	t.Parallel()
	c := startCore(t, coreBlock("")+job("hello", "echo hi", `overlap = "allow"`))
	host := hostname(t)
	type maint struct {
		Global   bool     `json:"global"`
		Machines []string `json:"machines"`
		Source   string   `json:"source"`
	}
	var m maint
	if st := c.call(http.MethodPut, "/api/v1/maintenance", map[string]any{"global": false, "machines": []string{host}}, &m); st != http.StatusOK || m.Source != "api" {
		t.Fatalf("PUT maintenance: %d %+v", st, m)
	}
	r := c.waitFinal(c.runNow("hello"), 30*time.Second)
	if r.Status != "skipped" || len(r.Machines) != 1 || r.Machines[0].Status != "skipped" {
		t.Fatalf("run with its only machine under maintenance: %+v", r)
	}

	if st := c.call(http.MethodPut, "/api/v1/maintenance", map[string]any{"global": true, "machines": []string{}}, &m); st != http.StatusOK {
		t.Fatalf("PUT global maintenance: %d", st)
	}
	var refusal struct {
		Code string `json:"code"`
	}
	if st := c.call(http.MethodPost, "/api/v1/jobs/hello/run", nil, &refusal); st != http.StatusConflict || refusal.Code != "MAINTENANCE" {
		t.Fatalf("run under global maintenance: %d %+v; want 409 MAINTENANCE", st, refusal)
	}

	c.restart(syscall.SIGKILL)
	if st := c.call(http.MethodGet, "/api/v1/maintenance", nil, &m); st != http.StatusOK || !m.Global || m.Source != "api" {
		t.Fatalf("maintenance after a SIGKILL: %d %+v; want the override", st, m)
	}
	if st := c.call(http.MethodDelete, "/api/v1/maintenance", nil, &m); st != http.StatusOK || m.Global || m.Source != "config" {
		t.Fatalf("DELETE maintenance: %d %+v; want the HCL's", st, m)
	}
	if r := c.waitFinal(c.runNow("hello"), 30*time.Second); r.Status != "succeeded" {
		t.Fatalf("run after the reset: %+v", r)
	}
}
