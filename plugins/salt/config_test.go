package salt_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/saltpeter/saltpeter/plugins/salt/salttest"
)

// TestConfigure: the plugin block's config is decoded strictly, every
// mistake named, the password read from its file.
func TestConfigure(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw := write("pw", "secret-pw\n")
	empty := write("empty", " \n")
	notPEM := write("not.pem", "not a certificate\n")
	tlsSalt := salttest.Start(t, salttest.Config{TLS: true})
	missing := filepath.Join(dir, "no-such-file")

	tests := []struct {
		name   string
		config string
		want   []string // nil: accepted
	}{
		{"minimal", `{"url":"https://salt:8000","username":"sp","password_file":"` + pw + `"}`, nil},
		{"under a prefix, with every setting", `{"url":"https://salt:8000/api/","username":"sp","password_file":"` + pw + `","eauth":"ldap","ca_file":"` + tlsSalt.CAFile + `","ping_timeout":"3s","return_timeout":"2m","minion_path":"/bin"}`, nil},
		{"plain http", `{"url":"http://salt:8000","username":"sp","password_file":"` + pw + `"}`, nil},
		{"unknown key", `{"url":"https://salt:8000","username":"sp","password_file":"` + pw + `","port":8000}`, []string{`unknown field "port"`}},
		{"wrong type", `{"url":8000,"username":"sp","password_file":"` + pw + `"}`, []string{"url"}},
		{"not an object", `["https://salt:8000"]`, []string{"decode"}},
		{"trailing data", `{"url":"https://salt:8000","username":"sp","password_file":"` + pw + `"} {}`, []string{"trailing data"}},
		{"empty", ``, []string{"url", "username is required", "password_file is required"}},
		{"not a URL scheme salt-api speaks", `{"url":"ftp://salt","username":"sp","password_file":"` + pw + `"}`, []string{"ftp://salt", "https://"}},
		{"no host", `{"url":"https:///x","username":"sp","password_file":"` + pw + `"}`, []string{"no host"}},
		{"credentials in the URL", `{"url":"https://sp:hunter2@salt:8000","username":"sp","password_file":"` + pw + `"}`, []string{"credentials", "password_file"}},
		{"missing password file", `{"url":"https://salt:8000","username":"sp","password_file":"` + missing + `"}`, []string{"password_file", missing}},
		{"empty password file", `{"url":"https://salt:8000","username":"sp","password_file":"` + empty + `"}`, []string{empty, "empty"}},
		{"missing ca_file", `{"url":"https://salt:8000","username":"sp","password_file":"` + pw + `","ca_file":"` + missing + `"}`, []string{"ca_file", missing}},
		{"ca_file not PEM", `{"url":"https://salt:8000","username":"sp","password_file":"` + pw + `","ca_file":"` + notPEM + `"}`, []string{notPEM, "no PEM certificate"}},
		{"ca_file for http", `{"url":"http://salt:8000","username":"sp","password_file":"` + pw + `","ca_file":"` + tlsSalt.CAFile + `"}`, []string{"ca_file", "not https"}},
		{"bad ping_timeout", `{"url":"https://salt:8000","username":"sp","password_file":"` + pw + `","ping_timeout":"soon"}`, []string{"ping_timeout", "soon"}},
		{"negative return_timeout", `{"url":"https://salt:8000","username":"sp","password_file":"` + pw + `","return_timeout":"-1s"}`, []string{"return_timeout", "positive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tgt, _ := newTarget(t)
			err := tgt.Configure(ctx(t), []byte(tt.config))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Configure(%s): %v", tt.config, err)
				}
				return
			}
			mustContain(t, "Configure", err, tt.want...)
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the password from the URL: %v", err)
			}
		})
	}
}

// TestUnconfigured: a target used before Configure says so.
func TestUnconfigured(t *testing.T) {
	tgt, _ := newTarget(t)
	_, err := tgt.Resolve(ctx(t), resolveReq("j", args("web*", "")))
	mustContain(t, "Resolve", err, "not configured")
	_, err = tgt.Dispatch(ctx(t), request("j", "run-1", "web1", args("web*", "")))
	mustContain(t, "Dispatch", err, "not configured")
}

// TestPasswordTrimmedEauthDefault: the password file's newline is no part
// of the password, and eauth is pam unless said: the stand-in accepts
// only the exact password with eauth pam.
func TestPasswordTrimmedEauthDefault(t *testing.T) {
	s := salttest.Start(t, salttest.Config{Password: "pw with inner space", Minions: []salttest.Minion{{ID: "web1"}}})
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte("  pw with inner space \n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tgt, _ := configured(t, s, map[string]any{"password_file": p})
	if _, err := tgt.Resolve(ctx(t), resolveReq("j", args("web1", ""))); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if s.Logins() != 1 {
		t.Errorf("logins = %d, want 1", s.Logins())
	}
}
