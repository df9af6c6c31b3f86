package api

import (
	"testing"
)

func TestMaintenance(t *testing.T) {
	e := newEnv(t, withTokens)
	e.ctl.maint.Machines = []string{"db3"}
	steps := []struct {
		name   string
		r      req
		status int
		code   string
		want   string // the body, for a 200
	}{
		{"from the HCL", req{Method: "GET", Path: "/api/v1/maintenance", Auth: readSecret}, 200, "",
			`{"global":false,"machines":["db3"],"source":"config"}`},
		{"a reader may not set it", req{Method: "PUT", Path: "/api/v1/maintenance", Auth: readSecret,
			Body: `{"global":true,"machines":[]}`}, 403, CodeForbidden, ""},
		{"both fields are needed", req{Method: "PUT", Path: "/api/v1/maintenance", Auth: opSecret,
			Body: `{"global":true}`}, 400, CodeBadRequest, ""},
		{"an unknown field is refused", req{Method: "PUT", Path: "/api/v1/maintenance", Auth: opSecret,
			Body: `{"global":true,"machines":[],"hosts":["x"]}`}, 400, CodeBadJSON, ""},
		{"set", req{Method: "PUT", Path: "/api/v1/maintenance", Auth: opSecret,
			Body: `{"global":true,"machines":["web1"]}`}, 200, "",
			`{"global":true,"machines":["web1"],"source":"api","set_by":"deployer","set_at":"2025-03-01T10:00:00Z"}`},
		{"read back", req{Method: "GET", Path: "/api/v1/maintenance", Auth: readSecret}, 200, "",
			`{"global":true,"machines":["web1"],"source":"api","set_by":"deployer","set_at":"2025-03-01T10:00:00Z"}`},
		{"reset to the HCL", req{Method: "DELETE", Path: "/api/v1/maintenance", Auth: opSecret}, 200, "",
			`{"global":false,"machines":["db3"],"source":"config"}`},
	}
	for _, s := range steps {
		r := e.do(s.r)
		if s.code != "" {
			wantError(t, r, s.status, s.code)
			continue
		}
		wantStatus(t, r, s.status)
		if got := string(r.Body); got != s.want+"\n" && got != s.want {
			t.Errorf("%s: body %s, want %s", s.name, got, s.want)
		}
	}
}
