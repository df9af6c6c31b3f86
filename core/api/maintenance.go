package api

import (
	"net/http"

	"github.com/saltpeter/saltpeter/core/control"
)

// maintenanceJSON is GET /api/v1/maintenance: the spec's global and
// machines, and where they come from (the HCL block, or an API override
// with who set it and when).
type maintenanceJSON struct {
	Global   bool     `json:"global"`
	Machines []string `json:"machines"`
	Source   string   `json:"source"` // "config" or "api"
	SetBy    string   `json:"set_by,omitempty"`
	SetAt    *string  `json:"set_at,omitempty"`
}

func maintenanceOut(m control.MaintenanceState) maintenanceJSON {
	out := maintenanceJSON{Global: m.Global, Machines: m.Machines, Source: "config"}
	if out.Machines == nil {
		out.Machines = []string{}
	}
	if m.Override {
		out.Source, out.SetBy, out.SetAt = "api", m.SetBy, ts(m.SetAt)
	}
	return out
}

func (a *API) getMaintenance(w http.ResponseWriter, r *http.Request) {
	m, err := a.control.Maintenance(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeJSON(w, http.StatusOK, maintenanceOut(m))
}

// maintenanceBody is PUT /api/v1/maintenance: the whole state, both
// fields required, so that a client sending one cannot clear the other
// by accident.
type maintenanceBody struct {
	Global   *bool     `json:"global"`
	Machines *[]string `json:"machines"`
}

func (a *API) putMaintenance(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var body maintenanceBody
	if e := decodeJSON(data, &body, false); e != nil {
		a.writeError(w, e)
		return
	}
	if body.Global == nil || body.Machines == nil {
		a.writeError(w, errorf(http.StatusBadRequest, CodeBadRequest,
			`The body needs both "global" (true or false) and "machines" (a list, [] for none): it replaces the maintenance in force.`))
		return
	}
	by := who(r).Name
	m, err := a.control.SetMaintenance(r.Context(), *body.Global, *body.Machines, by)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("operator set maintenance", "global", m.Global, "machines", len(m.Machines), "by", by)
	a.writeJSON(w, http.StatusOK, maintenanceOut(m))
}

// deleteMaintenance drops the API's override: the HCL block holds again.
func (a *API) deleteMaintenance(w http.ResponseWriter, r *http.Request) {
	by := who(r).Name
	m, err := a.control.ResetMaintenance(r.Context(), by)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("operator reset maintenance", "by", by)
	a.writeJSON(w, http.StatusOK, maintenanceOut(m))
}
