package salttest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// do sends a request to s and returns the status, Content-Type and body.
func do(t *testing.T, s *Server, method, path, token, contentType, body string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func login(t *testing.T, s *Server) string {
	t.Helper()
	status, _, body := do(t, s, "POST", "/login", "", "application/json",
		`{"username":"saltpeter","password":"salt-password","eauth":"pam"}`)
	if status != 200 {
		t.Fatalf("login: %d %s", status, body)
	}
	var r struct {
		Return []struct {
			Token string `json:"token"`
		} `json:"return"`
	}
	if err := json.Unmarshal(body, &r); err != nil || len(r.Return) != 1 || r.Return[0].Token == "" {
		t.Fatalf("login answered %s (%v)", body, err)
	}
	return r.Return[0].Token
}

// TestLogin: /login takes JSON or a form, answers the documented fields
// and the token in X-Auth-Token too, and refuses wrong credentials with
// CherryPy's 401 page and salt-api's message.
func TestLogin(t *testing.T) {
	s := Start(t, Config{TokenTTL: time.Hour})
	for _, tt := range []struct{ ct, body string }{
		{"application/json", `{"username":"saltpeter","password":"salt-password","eauth":"pam"}`},
		{"application/x-www-form-urlencoded", url.Values{"username": {"saltpeter"}, "password": {"salt-password"}, "eauth": {"pam"}}.Encode()},
	} {
		req, _ := http.NewRequest("POST", s.URL+"/login", strings.NewReader(tt.body))
		req.Header.Set("Content-Type", tt.ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Return []map[string]any `json:"return"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(r.Return) != 1 {
			t.Fatalf("%s login: %d, %v, %v", tt.ct, resp.StatusCode, r, err)
		}
		got := r.Return[0]
		for _, k := range []string{"token", "start", "expire", "user", "eauth", "perms"} {
			if _, ok := got[k]; !ok {
				t.Errorf("%s login: no %q in %v", tt.ct, k, got)
			}
		}
		if resp.Header.Get("X-Auth-Token") != got["token"] {
			t.Errorf("X-Auth-Token %q is not the token %v", resp.Header.Get("X-Auth-Token"), got["token"])
		}
		if life := got["expire"].(float64) - got["start"].(float64); life < 3599 || life > 3601 {
			t.Errorf("expire - start = %v s, want the TTL (3600)", life)
		}
	}
	status, ct, body := do(t, s, "POST", "/login", "", "application/json", `{"username":"saltpeter","password":"nope","eauth":"pam"}`)
	if status != 401 || !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(body), "<p>Could not authenticate using provided credentials</p>") {
		t.Errorf("bad credentials: %d %s %s", status, ct, body)
	}
	if s.Logins() != 2 {
		t.Errorf("logins = %d, want 2", s.Logins())
	}
}

// TestTokens: / and /jobs want a good token; a missing, unknown or expired
// one is a 401, and so is a function eauth does not allow.
func TestTokens(t *testing.T) {
	s := Start(t, Config{Minions: []Minion{{ID: "web1"}}})
	ping := `[{"client":"local_async","tgt":"*","fun":"test.ping"}]`
	for _, tok := range []string{"", "not-a-token"} {
		if status, _, _ := do(t, s, "POST", "/", tok, "application/json", ping); status != 401 {
			t.Errorf("token %q: %d, want 401", tok, status)
		}
		if status, _, _ := do(t, s, "GET", "/jobs/1", tok, "", ""); status != 401 {
			t.Errorf("GET /jobs with token %q: %d, want 401", tok, status)
		}
	}
	tok := login(t, s)
	if status, _, body := do(t, s, "POST", "/", tok, "application/json", ping); status != 200 {
		t.Fatalf("good token: %d %s", status, body)
	}
	s.ForbidFunction("cmd.run_bg")
	if status, _, _ := do(t, s, "POST", "/", tok, "application/json", `[{"client":"local_async","tgt":"*","fun":"cmd.run_bg","kwarg":{"cmd":"x"}}]`); status != 401 {
		t.Errorf("forbidden function: %d, want 401", status)
	}
	s.ExpireTokens()
	if status, _, _ := do(t, s, "POST", "/", tok, "application/json", ping); status != 401 {
		t.Errorf("expired token: %d, want 401", status)
	}
	if s.Refused() != 6 {
		t.Errorf("refused = %d, want 6", s.Refused())
	}
}

// TestPublishAndJobs: local_async answers the jid and the expected
// minions (the silent among them), or {} when nothing matched; /jobs/<jid>
// answers the info and the returns come in so far.
func TestPublishAndJobs(t *testing.T) {
	s := Start(t, Config{Minions: []Minion{
		{ID: "web1"}, {ID: "web2", Silent: true}, {ID: "web3", ReturnAfterPolls: 1}, {ID: "web4", Unexpected: true}, {ID: "db1"},
	}})
	tok := login(t, s)
	status, _, body := do(t, s, "POST", "/", tok, "application/json", `[{"client":"local_async","tgt":"web*","fun":"test.ping"}]`)
	var pub struct {
		Return []struct {
			JID     string   `json:"jid"`
			Minions []string `json:"minions"`
		} `json:"return"`
	}
	if err := json.Unmarshal(body, &pub); status != 200 || err != nil || len(pub.Return) != 1 {
		t.Fatalf("local_async: %d %s", status, body)
	}
	jid := pub.Return[0].JID
	if want := []string{"web1", "web2", "web3"}; !reflect.DeepEqual(pub.Return[0].Minions, want) || len(jid) != 20 {
		t.Errorf("local_async = %s, want jid of 20 digits and minions %q", body, want)
	}

	read := func() (info map[string]any, rets map[string]any) {
		t.Helper()
		status, _, body := do(t, s, "GET", "/jobs/"+jid, tok, "", "")
		var r struct {
			Info   []map[string]any `json:"info"`
			Return []map[string]any `json:"return"`
		}
		if err := json.Unmarshal(body, &r); status != 200 || err != nil || len(r.Info) != 1 || len(r.Return) != 1 {
			t.Fatalf("GET /jobs/%s: %d %s", jid, status, body)
		}
		return r.Info[0], r.Return[0]
	}
	info, rets := read()
	if info["Function"] != "test.ping" || info["Target"] != "web*" || info["Target-type"] != "glob" || info["jid"] != jid {
		t.Errorf("info = %v", info)
	}
	if got := slices.Sorted(mapsKeys(rets)); !reflect.DeepEqual(got, []string{"web1", "web4"}) {
		t.Errorf("first read: returns of %q, want web1 and web4", got)
	}
	_, rets = read()
	if got := slices.Sorted(mapsKeys(rets)); !reflect.DeepEqual(got, []string{"web1", "web3", "web4"}) || rets["web1"] != true {
		t.Errorf("second read: returns %v, want web1, web3 and web4 true", rets)
	}

	status, _, body = do(t, s, "POST", "/", tok, "application/json", `[{"client":"local_async","tgt":"nothing*","fun":"test.ping"}]`)
	if status != 200 || strings.TrimSpace(string(body)) != `{"return":[{}]}` {
		t.Errorf("no match: %d %s, want {\"return\":[{}]}", status, body)
	}
	if n := len(s.Calls()); n != 2 {
		t.Errorf("%d calls recorded, want 2", n)
	}
}

func mapsKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestBadBodies: what rest_cherrypy refuses.
func TestBadBodies(t *testing.T) {
	s := Start(t, Config{})
	tok := login(t, s)
	tests := []struct {
		ct, body string
		status   int
		msg      string
	}{
		{"application/json", `"test.ping"`, 400, "Lowstates must be a list"},
		{"application/json", `[{"client":`, 400, "Invalid JSON document"},
		{"application/xml", `<x/>`, 406, "Content type not supported"},
		{"application/json", `[{"client":"wheel","fun":"key.list_all"}]`, 400, ""},
	}
	for _, tt := range tests {
		status, _, body := do(t, s, "POST", "/", tok, tt.ct, tt.body)
		if status != tt.status || !strings.Contains(string(body), tt.msg) {
			t.Errorf("%s %s: %d %s, want %d with %q", tt.ct, tt.body, status, body, tt.status, tt.msg)
		}
	}
}

// TestRunBg: cmd.run_bg builds the command line and environment as
// Salt's cmdmod does, defaults included.
func TestRunBg(t *testing.T) {
	t.Setenv("SALTTEST_MINION_OWN", "minion's")
	s := Start(t, Config{})
	tests := []struct {
		name    string
		kwarg   map[string]any
		argv    []string
		env     map[string]string // nil: not checked
		hasEnv  []string
		failure string
	}{
		{"remote defaults: a shell, the minion's environment, C locale",
			map[string]any{"cmd": "echo $HOME", "env": map[string]any{"A": "1"}, "cwd": "/"},
			[]string{"/bin/sh", "-c", "echo $HOME"}, nil, []string{"A", "SALTTEST_MINION_OWN", "LC_CTYPE", "LANGUAGE"}, ""},
		{"no shell, clean environment, no locale",
			map[string]any{"cmd": `'/opt/a b/w'\''x' -v`, "python_shell": false, "clean_env": true, "reset_system_locale": false, "env": map[string]any{"A": "1"}, "cwd": "/"},
			[]string{"/opt/a b/w'x", "-v"}, map[string]string{"A": "1"}, nil, ""},
		{"stdin is not an argument of run_bg", map[string]any{"cmd": "x", "stdin": "secret"}, nil, nil, nil, "multiple values for keyword argument 'stdin'"},
		{"no cmd", map[string]any{}, nil, nil, nil, "missing 1 required positional argument: 'cmd'"},
		{"bad cwd", map[string]any{"cmd": "x", "cwd": "relative"}, nil, nil, nil, "Specified cwd 'relative' either not absolute or does not exist"},
		{"unclosed quote", map[string]any{"cmd": "'x", "python_shell": false, "cwd": "/"}, nil, nil, nil, "No closing quotation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := s.runBg(nil, tt.kwarg)
			if tt.failure != "" {
				if !strings.Contains(run.Failure, tt.failure) {
					t.Errorf("failure %q, want %q", run.Failure, tt.failure)
				}
				return
			}
			if run.Failure != "" || run.PID == 0 {
				t.Fatalf("run = %+v", run)
			}
			if !reflect.DeepEqual(run.Argv, tt.argv) {
				t.Errorf("argv = %q, want %q", run.Argv, tt.argv)
			}
			if tt.env != nil && !reflect.DeepEqual(run.Env, tt.env) {
				t.Errorf("env = %q, want %q", run.Env, tt.env)
			}
			for _, k := range tt.hasEnv {
				if _, ok := run.Env[k]; !ok {
					t.Errorf("env lacks %s: %q", k, run.Env)
				}
			}
			if _, ok := run.Env["LC_ALL"]; ok {
				t.Error("env has LC_ALL, which Salt does not set")
			}
		})
	}
}

// TestRunBgExec: with Exec, a command that cannot start is Salt's
// "Unable to run command" with the whole context, environment included.
func TestRunBgExec(t *testing.T) {
	s := Start(t, Config{Exec: true})
	run := s.runBg(nil, map[string]any{"cmd": "/no/such/wrapper", "python_shell": false, "clean_env": true,
		"reset_system_locale": false, "cwd": "/", "env": map[string]any{"SP_TOKEN": "tok-123"}})
	want := `ERROR: Unable to run command '['/no/such/wrapper']' with the context '{'cwd': '/', 'shell': False, 'env': {'SP_TOKEN': 'tok-123'}, `
	if !strings.HasPrefix(run.Failure, want) || !strings.HasSuffix(run.Failure, `reason: [Errno 2] No such file or directory: '/no/such/wrapper'`) {
		t.Errorf("failure = %q", run.Failure)
	}
	run = s.runBg(nil, map[string]any{"cmd": "true", "python_shell": false, "cwd": "/"})
	if run.Failure != "" || run.PID == 0 {
		t.Fatalf("run of true = %+v", run)
	}
	s.AwaitExit(t, run.PID)
}

// TestShlexSplit: Python's shlex.split, POSIX mode.
func TestShlexSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"a b\tc\n", []string{"a", "b", "c"}, ""},
		{`'a b' "c d"`, []string{"a b", "c d"}, ""},
		{`'it'\''s'`, []string{"it's"}, ""},
		{`"a \"b\" \\c \d $x"`, []string{`a "b" \c \d $x`}, ""},
		{`a\ b c\\`, []string{"a b", `c\`}, ""},
		{`''`, []string{""}, ""},
		{`x''y`, []string{"xy"}, ""},
		{"", nil, ""},
		{`'x`, nil, "No closing quotation"},
		{`"x`, nil, "No closing quotation"},
		{`x\`, nil, "No escaped character"},
	}
	for _, tt := range tests {
		got, err := shlexSplit(tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("shlexSplit(%q) = %q, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("shlexSplit(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestFailNext: a queued failure answers once, in place of the next
// request to its path.
func TestFailNext(t *testing.T) {
	s := Start(t, Config{})
	s.FailNext("/jobs/", 502, "text/plain", "bad gateway")
	tok := login(t, s)
	if status, _, body := do(t, s, "GET", "/jobs/123", tok, "", ""); status != 502 || string(body) != "bad gateway" {
		t.Errorf("first: %d %s", status, body)
	}
	if status, _, _ := do(t, s, "GET", "/jobs/123", tok, "", ""); status != 200 {
		t.Errorf("second: %d, want 200", status)
	}
}
