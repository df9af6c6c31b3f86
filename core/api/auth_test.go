package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/config"
)

func TestCheckListen(t *testing.T) {
	tests := []struct {
		listen  string
		tokens  []config.APIToken
		wantErr string // "" for none
	}{
		{"127.0.0.1:8080", nil, ""},
		{"127.1.2.3:8080", nil, ""},
		{"[::1]:8080", nil, ""},
		{"localhost:8080", nil, ""},
		{"LocalHost:8080", nil, ""},
		{":8080", nil, "every interface"},
		{"0.0.0.0:8080", nil, "not a loopback"},
		{"[::]:8080", nil, "not a loopback"},
		{"10.0.0.5:8080", nil, "not a loopback"},
		{"core.example.com:8080", nil, "not a loopback"},
		{"127.0.0.1", nil, "host:port"},
		{"0.0.0.0:8080", testTokens, ""},
		{":8080", testTokens, ""},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			err := CheckListen(tt.listen, tt.tokens)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CheckListen(%q) = %v, want nil", tt.listen, err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("CheckListen(%q) = nil, want an error with %q", tt.listen, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("CheckListen(%q) = %v, want it to say %q", tt.listen, err, tt.wantErr)
			}
		})
	}
}

func TestAuthMatrix(t *testing.T) {
	tests := []struct {
		name   string
		tokens bool
		method string
		path   string
		header string // Authorization, verbatim
		status int
		code   string // for errors
		by     string // for RunNow
	}{
		{"no token", true, "GET", "/api/v1/jobs", "", 401, CodeUnauthorized, ""},
		{"bad token", true, "GET", "/api/v1/jobs", "Bearer nope", 401, CodeUnauthorized, ""},
		{"not bearer", true, "GET", "/api/v1/jobs", "Basic " + opSecret, 401, CodeUnauthorized, ""},
		{"empty bearer", true, "GET", "/api/v1/jobs", "Bearer ", 401, CodeUnauthorized, ""},
		{"token hash used as token", true, "GET", "/api/v1/jobs", "Bearer " + tokenHash(opSecret), 401, CodeUnauthorized, ""},
		{"read token GET", true, "GET", "/api/v1/jobs", "Bearer " + readSecret, 200, "", ""},
		{"read token POST", true, "POST", "/api/v1/jobs/backup/run", "Bearer " + readSecret, 403, CodeForbidden, ""},
		{"read token reload", true, "POST", "/api/v1/reload", "Bearer " + readSecret, 403, CodeForbidden, ""},
		{"operate token GET", true, "GET", "/api/v1/jobs", "Bearer " + opSecret, 200, "", ""},
		{"operate token POST", true, "POST", "/api/v1/jobs/backup/run", "Bearer " + opSecret, 202, "", "deployer"},
		{"scheme case", true, "POST", "/api/v1/jobs/backup/run", "bearer " + opSecret, 202, "", "deployer"},
		{"no token on unknown path", true, "GET", "/api/v1/nope", "", 404, CodeNotFound, ""},
		{"healthz needs none", true, "GET", "/healthz", "", 200, "", ""},
		{"tokens off GET", false, "GET", "/api/v1/jobs", "", 200, "", ""},
		{"tokens off POST is local", false, "POST", "/api/v1/jobs/backup/run", "", 202, "", "local"},
		{"tokens off ignores a header", false, "POST", "/api/v1/jobs/backup/run", "Bearer whatever", 202, "", "local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *env
			if tt.tokens {
				e = newEnv(t, withTokens)
			} else {
				e = newEnv(t)
			}
			r := e.do(req{Method: tt.method, Path: tt.path, Header: map[string]string{"Authorization": tt.header}})
			if tt.code != "" {
				wantError(t, r, tt.status, tt.code)
			} else {
				wantStatus(t, r, tt.status)
			}
			if tt.status == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			calls := e.ctl.Calls("RunNow")
			switch {
			case tt.by == "" && len(calls) != 0:
				t.Errorf("RunNow called %v, want no call", calls)
			case tt.by != "" && (len(calls) != 1 || calls[0].By != tt.by):
				t.Errorf("RunNow calls = %+v, want one by %q", calls, tt.by)
			}
		})
	}
}

// sessionCookie signs in with a token and returns the cookie.
func (e *env) sessionCookie(secret string) *http.Cookie {
	e.t.Helper()
	r := e.do(req{Method: "POST", Path: "/api/v1/session", Body: `{"token":"` + secret + `"}`})
	wantStatus(e.t, r, 200)
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == SessionCookie {
			return c
		}
	}
	e.t.Fatalf("no %s cookie in %v", SessionCookie, r.Header)
	return nil
}

func TestSession(t *testing.T) {
	e := newEnv(t, withTokens)
	c := e.sessionCookie(opSecret)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Errorf("cookie = %+v, want HttpOnly, SameSite=Strict, Path=/", c)
	}
	if strings.Contains(c.Value, opSecret) || strings.Contains(c.Value, tokenHash(opSecret)) {
		t.Error("cookie carries the token or its hash")
	}
	readCookie := e.sessionCookie(readSecret)
	cookie := func(c *http.Cookie) map[string]string { return map[string]string{"Cookie": c.Name + "=" + c.Value} }

	tests := []struct {
		name   string
		method string
		path   string
		header map[string]string
		status int
		code   string
	}{
		{"operate cookie GET", "GET", "/api/v1/jobs", cookie(c), 200, ""},
		{"operate cookie POST", "POST", "/api/v1/jobs/backup/run", cookie(c), 202, ""},
		{"read cookie GET", "GET", "/api/v1/jobs", cookie(readCookie), 200, ""},
		{"read cookie POST", "POST", "/api/v1/jobs/backup/run", cookie(readCookie), 403, CodeForbidden},
		{"tampered cookie", "GET", "/api/v1/jobs", map[string]string{"Cookie": SessionCookie + "=" + tamper(c.Value)}, 401, CodeUnauthorized},
		{"garbage cookie", "GET", "/api/v1/jobs", map[string]string{"Cookie": SessionCookie + "=x.y"}, 401, CodeUnauthorized},
		{"cookie of a read session relabelled", "GET", "/api/v1/jobs", map[string]string{"Cookie": SessionCookie + "=" + swapPayload(readCookie.Value, c.Value)}, 401, CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(req{Method: tt.method, Path: tt.path, Header: tt.header})
			if tt.code != "" {
				wantError(t, r, tt.status, tt.code)
				return
			}
			wantStatus(t, r, tt.status)
		})
	}
	if calls := e.ctl.Calls("RunNow"); len(calls) != 1 || calls[0].By != "deployer" {
		t.Errorf("RunNow calls = %+v, want one by deployer", calls)
	}

	t.Run("who am I", func(t *testing.T) {
		r := e.do(req{Method: "GET", Path: "/api/v1/session", Header: cookie(readCookie)})
		wantStatus(t, r, 200)
		if v := r.JSON(t); v["name"] != "viewer" || v["role"] != "read" {
			t.Errorf("session = %s, want viewer/read", r.Body)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		wantError(t, e.do(req{Method: "POST", Path: "/api/v1/session", Body: `{"token":"nope"}`}), 401, CodeUnauthorized)
	})
	t.Run("empty token", func(t *testing.T) {
		wantError(t, e.do(req{Method: "POST", Path: "/api/v1/session", Body: `{"token":""}`}), 401, CodeUnauthorized)
	})
	t.Run("garbage body", func(t *testing.T) {
		wantError(t, e.do(req{Method: "POST", Path: "/api/v1/session", Body: `{"token":`}), 400, CodeBadJSON)
	})
	t.Run("logout clears the cookie", func(t *testing.T) {
		r := e.do(req{Method: "DELETE", Path: "/api/v1/session", Header: cookie(c)})
		wantStatus(t, r, 204)
		if sc := r.Header.Get("Set-Cookie"); !strings.Contains(sc, "Max-Age=0") {
			t.Errorf("Set-Cookie = %q, want an expired cookie", sc)
		}
	})
	t.Run("expired", func(t *testing.T) {
		e.advance(sessionTTL + time.Second)
		wantError(t, e.do(req{Method: "GET", Path: "/api/v1/jobs", Header: cookie(c)}), 401, CodeUnauthorized)
	})
}

// tamper flips one character of the payload.
func tamper(v string) string {
	b := []byte(v)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

// swapPayload puts one cookie's payload with another's signature.
func swapPayload(payloadFrom, sigFrom string) string {
	p, _, _ := strings.Cut(payloadFrom, ".")
	_, s, _ := strings.Cut(sigFrom, ".")
	return p + "." + s
}

func TestSessionTokensOff(t *testing.T) {
	e := newEnv(t)
	r := e.do(req{Method: "POST", Path: "/api/v1/session", Body: `{"token":"anything"}`})
	wantStatus(t, r, 200)
	if v := r.JSON(t); v["name"] != LocalName || v["role"] != "operate" {
		t.Errorf("session = %s, want local/operate", r.Body)
	}
	if r.Header.Get("Set-Cookie") != "" {
		t.Errorf("tokens off set a cookie: %q", r.Header.Get("Set-Cookie"))
	}
}

func TestOriginAndHost(t *testing.T) {
	tests := []struct {
		name   string
		tokens bool
		header map[string]string
		status int
	}{
		{"no origin", false, nil, 202},
		{"own origin", false, map[string]string{"Origin": "ORIGIN"}, 202},
		{"listen address as origin", false, map[string]string{"Origin": "http://127.0.0.1:8080"}, 202},
		{"foreign origin", false, map[string]string{"Origin": "http://evil.example"}, 403},
		{"null origin", false, map[string]string{"Origin": "null"}, 403},
		{"foreign host, tokens off", false, map[string]string{"Host": "evil.example:8080"}, 403},
		{"localhost host, tokens off", false, map[string]string{"Host": "localhost:8080"}, 202},
		{"foreign host, tokens on", true, map[string]string{"Host": "core.example:8080", "Authorization": "Bearer " + opSecret}, 202},
		{"foreign origin, tokens on", true, map[string]string{"Origin": "http://evil.example", "Authorization": "Bearer " + opSecret}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *env
			if tt.tokens {
				e = newEnv(t, withTokens)
			} else {
				e = newEnv(t)
			}
			h := map[string]string{}
			for k, v := range tt.header {
				if v == "ORIGIN" {
					v = e.srv.URL
				}
				h[k] = v
			}
			r := e.do(req{Method: "POST", Path: "/api/v1/jobs/backup/run", Header: h})
			if tt.status == 403 {
				wantError(t, r, 403, CodeForbidden)
				if n := len(e.ctl.Calls("RunNow")); n != 0 {
					t.Errorf("refused request still reached Control (%d calls)", n)
				}
				return
			}
			wantStatus(t, r, tt.status)
		})
	}
}

func TestTokenWithBadHashIsIgnored(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Tokens = []config.APIToken{{Name: "broken", Role: config.RoleOperate, SHA256: "zz"}, testTokens[1]}
	})
	wantError(t, e.do(req{Method: "GET", Path: "/api/v1/jobs", Auth: "zz"}), 401, CodeUnauthorized)
	wantStatus(t, e.do(req{Method: "GET", Path: "/api/v1/jobs", Auth: readSecret}), 200)
}

// TestSessionOutlivesARestart: a session cookie signed with the core's
// session key is good on another API with the same key (the core
// restarted, or another core sharing its site secret), and on none with
// another key or with a key made at start.
func TestSessionOutlivesARestart(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	withKey := func(k []byte) envOpt { return func(c *Config) { withTokens(c); c.SessionKey = k } }
	c := newEnv(t, withKey(key)).sessionCookie(opSecret)
	header := map[string]string{"Cookie": c.Name + "=" + c.Value}
	tests := []struct {
		name   string
		opt    envOpt
		status int
	}{
		{"same key", withKey(key), 200},
		{"another key", withKey([]byte("another key, as long as the first")), 401},
		{"a key made at start", withTokens, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newEnv(t, tt.opt).do(req{Method: "GET", Path: "/api/v1/jobs", Header: header})
			wantStatus(t, r, tt.status)
		})
	}
}
