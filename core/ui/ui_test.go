package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	tests := []struct {
		method, path string
		status       int
		ctype, body  string
	}{
		{"GET", "/", 200, "text/html", `src="/ui/app.js"`},
		{"GET", "/ui/app.js", 200, "text/javascript", "connectLive"},
		{"GET", "/ui/style.css", 200, "text/css", "#output"},
		{"GET", "/ui/maintenance.js", 200, "text/javascript", "maintenancePage"},
		{"GET", "/ui/audit.js", 200, "text/javascript", "auditPage"},
		{"GET", "/ui/", 404, "", ""},
		{"GET", "/ui/missing.js", 404, "", ""},
		{"GET", "/elsewhere", 404, "", ""},
		{"POST", "/", 405, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			// Every answer carries the policy, errors too: a 404 page is
			// still a page a browser renders on the core's origin.
			csp := resp.Header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("Content-Security-Policy %q allows inline or eval", csp)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.ctype)
			}
			if !strings.Contains(string(b), tc.body) {
				t.Errorf("body lacks %q", tc.body)
			}
		})
	}
}

// TestNoRemoteOrInline: the page must work offline and under the policy,
// so nothing refers to another origin and no script or style is inline.
func TestNoRemoteOrInline(t *testing.T) {
	ents, err := files.ReadDir("static")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := files.ReadFile("static/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, bad := range []string{"http://", "https://", "style=\"", "<script>", "onclick=\""} {
			if strings.Contains(s, bad) {
				t.Errorf("%s holds %q", e.Name(), bad)
			}
		}
	}
}
