package salt_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/plugins/salt"
	"github.com/saltpeter/saltpeter/plugins/salt/salttest"
)

// fakeClock is a clock a test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestTokenRenewal: the token is kept while good, renewed before it
// expires, and a 401 logs in again once and retries once.
func TestTokenRenewal(t *testing.T) {
	tests := []struct {
		name string
		// between runs between the first Resolve and the second.
		between     func(s *salttest.Server, clock *fakeClock)
		wantErr     []string // nil: the second Resolve succeeds
		wantLogins  int
		wantRefused int
	}{
		// A one-hour token is renewed a minute before it expires.
		{"kept while good", func(_ *salttest.Server, c *fakeClock) { c.Add(58 * time.Minute) }, nil, 1, 0},
		{"renewed before it expires", func(_ *salttest.Server, c *fakeClock) { c.Add(59*time.Minute + 30*time.Second) }, nil, 2, 0},
		{"expired at salt-api: one re-login, call retried", func(s *salttest.Server, _ *fakeClock) { s.ExpireTokens() }, nil, 2, 1},
		{"refused again with a fresh token: an error, no loop", func(s *salttest.Server, _ *fakeClock) { s.ForbidFunction("test.ping") },
			[]string{"401 Unauthorized", "fresh token", "external_auth", "saltpeter"}, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := salttest.Start(t, salttest.Config{TokenTTL: time.Hour, Minions: []salttest.Minion{{ID: "web1"}}})
			clock := &fakeClock{now: time.Now()}
			tgt, _ := newTarget(t)
			salt.SetClock(tgt, clock.Now)
			if err := tgt.Configure(ctx(t), config(t, s, nil)); err != nil {
				t.Fatal(err)
			}
			if _, err := tgt.Resolve(ctx(t), resolveReq("j", args("web1", ""))); err != nil {
				t.Fatalf("first Resolve: %v", err)
			}
			tt.between(s, clock)
			_, err := tgt.Resolve(ctx(t), resolveReq("j", args("web1", "")))
			if tt.wantErr == nil && err != nil {
				t.Fatalf("second Resolve: %v", err)
			}
			if tt.wantErr != nil {
				mustContain(t, "second Resolve", err, tt.wantErr...)
			}
			if s.Logins() != tt.wantLogins {
				t.Errorf("logins = %d, want %d", s.Logins(), tt.wantLogins)
			}
			if tt.wantErr == nil && s.Refused() != tt.wantRefused {
				t.Errorf("salt-api refused %d requests, want %d", s.Refused(), tt.wantRefused)
			}
		})
	}
}

// TestConcurrentCallsLogInOnce: calls that all find no token share one
// login, and so do calls that all find the token refused.
func TestConcurrentCallsLogInOnce(t *testing.T) {
	s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web1"}}})
	tgt, _ := configured(t, s, nil)
	resolveAll := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { _, errs[i] = tgt.Resolve(ctx(t), resolveReq("j", args("web1", ""))) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
		}
	}
	resolveAll()
	if s.Logins() != 1 {
		t.Errorf("logins = %d after concurrent first calls, want 1", s.Logins())
	}
	s.ExpireTokens()
	resolveAll()
	if s.Logins() != 2 {
		t.Errorf("logins = %d after concurrent calls with an expired token, want 2", s.Logins())
	}
}

// TestLoginRefused: a login salt-api refuses says so with the status and
// salt-api's message, and not the password.
func TestLoginRefused(t *testing.T) {
	tests := []struct {
		name  string
		extra map[string]any
	}{
		{"wrong password", nil},
		{"wrong eauth", map[string]any{"eauth": "ldap"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := salttest.Start(t, salttest.Config{Password: "right-pw", Minions: []salttest.Minion{{ID: "web1"}}})
			extra := map[string]any{}
			for k, v := range tt.extra {
				extra[k] = v
			}
			if tt.name == "wrong password" {
				other := salttest.Start(t, salttest.Config{Password: "wrong-pw"})
				extra["password_file"] = other.PasswordFile(t)
			}
			tgt, _ := configured(t, s, extra)
			_, err := tgt.Resolve(ctx(t), resolveReq("j", args("web1", "")))
			mustContain(t, "Resolve", err, s.URL+"/login", "401 Unauthorized", "Could not authenticate using provided credentials", "saltpeter")
			if err != nil && strings.Contains(err.Error(), "-pw") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestSaltAPIErrors: an error status or an answer that is not salt-api's
// JSON is an error naming the URL and the status.
func TestSaltAPIErrors(t *testing.T) {
	tests := []struct {
		name        string
		path        string
		status      int
		contentType string
		body        string
		want        []string
	}{
		{"500 on /", "/", 500, "application/json", `{"status": 500, "return": "An unexpected error occurred"}`,
			[]string{"POST", "{url}/", "500 Internal Server Error", "An unexpected error occurred"}},
		{"garbage JSON on /", "/", 200, "application/json", `{"return": [{"jid": "1", `,
			[]string{"POST", "{url}/", "200 OK", "not JSON"}},
		{"no return on /", "/", 200, "application/json", `{"hello": "world"}`,
			[]string{"{url}/", "no \"return\""}},
		{"garbage JSON on /jobs", "/jobs/", 200, "application/json", `<html>oops</html>`,
			[]string{"GET", "{url}/jobs/", "200 OK", "not JSON", "oops"}},
		{"proxy error page on /jobs", "/jobs/", 502, "text/html", `<html><body><h1>502 Bad Gateway</h1></body></html>`,
			[]string{"GET", "{url}/jobs/", "502 Bad Gateway"}},
		{"503 on /login", "/login", 503, "text/html", `<html><body><p>Salt Master is not available.</p></body></html>`,
			[]string{"{url}/login", "503 Service Unavailable", "Salt Master is not available."}},
		{"garbage JSON on /login", "/login", 200, "application/json", `not json at all`,
			[]string{"{url}/login", "200 OK", "not JSON"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web1"}}})
			tgt, _ := configured(t, s, nil)
			s.FailNext(tt.path, tt.status, tt.contentType, tt.body)
			_, err := tgt.Resolve(ctx(t), resolveReq("j", args("web1", "")))
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = strings.ReplaceAll(w, "{url}", s.URL)
			}
			mustContain(t, "Resolve", err, want...)
		})
	}
}

// TestTLS: salt-api over https is trusted through ca_file, and refused
// without it or with another CA: verification is never skipped.
func TestTLS(t *testing.T) {
	s := salttest.Start(t, salttest.Config{TLS: true, Minions: []salttest.Minion{{ID: "web1"}}})
	other := salttest.Start(t, salttest.Config{TLS: true})
	tests := []struct {
		name   string
		caFile any
		want   []string // nil: works
	}{
		{"ca_file", s.CAFile, nil},
		{"no ca_file", nil, []string{s.URL + "/login", "certificate"}},
		{"another CA", other.CAFile, []string{s.URL + "/login", "certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tgt, _ := newTarget(t)
			c := config(t, s, map[string]any{"ca_file": tt.caFile})
			if err := tgt.Configure(ctx(t), c); err != nil {
				t.Fatal(err)
			}
			got, err := tgt.Resolve(ctx(t), resolveReq("j", args("web1", "")))
			if tt.want == nil {
				if err != nil || len(got) != 1 {
					t.Fatalf("Resolve = %q, %v", got, err)
				}
				return
			}
			mustContain(t, "Resolve", err, tt.want...)
		})
	}
	if s.Logins() != 1 {
		t.Errorf("logins = %d, want 1: only the verified connection may carry the credentials", s.Logins())
	}
}
