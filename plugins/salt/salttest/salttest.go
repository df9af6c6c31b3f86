package salttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"log"
	"maps"
	"math/big"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Minion is a minion the stand-in master knows.
type Minion struct {
	ID string
	// Silent minions have an accepted key, so targets match them and
	// they are among a job's expected minions, but they never return: a
	// machine that is down.
	Silent bool
	// Unexpected minions return when a target matches them but are not
	// among the expected minions (the master's view of the target was
	// stale).
	Unexpected bool
	// ReturnAfterPolls hides the minion's return from the first that
	// many reads of a job's returns, as a slow minion would.
	ReturnAfterPolls int
}

// Config sets up a stand-in salt-api. The zero value serves no minion.
type Config struct {
	// Username, Password and Eauth are the credentials /login accepts;
	// defaults "saltpeter", "salt-password", "pam".
	Username, Password, Eauth string
	Minions                   []Minion
	// TokenTTL is how long a token is good for; default 12h, Salt's
	// token_expire.
	TokenTTL time.Duration
	// Match resolves targets of the types the stand-in does not match
	// itself (all but glob, list and pcre; Salt evaluates those against
	// grains, pillar and the like). Nil: they match nothing.
	Match func(tgt any, tgtType string) []string
	// Exec makes cmd.run_bg run its command on this machine, as the
	// minion would; else the stand-in only computes and records it.
	Exec bool
	// TLS serves https with a certificate of its own (see CAFile).
	TLS bool
}

// Server is a running stand-in salt-api.
type Server struct {
	// URL is salt-api's base URL.
	URL string
	// CAFile is a PEM file with the TLS server's certificate; "" without
	// TLS.
	CAFile string

	cfg Config
	srv *httptest.Server

	mu        sync.Mutex
	minions   []Minion
	tokens    map[string]time.Time // token → expiry
	logins    int
	refused   int
	calls     []Call
	changed   chan struct{} // closed, and replaced, when a call is recorded
	jobs      map[string]*job
	jidSeq    int
	fails     []failure
	forbidden map[string]bool
	pidSeq    int
	procs     map[int]chan struct{}
	running   map[int]*os.Process
}

// Call is one lowstate chunk that reached the stand-in with a valid token.
type Call struct {
	// Path is the URL path it was posted to.
	Path  string
	Token string
	// Body is the whole request body it came in.
	Body []byte
	// Lowstate is the chunk as decoded (JSON numbers are float64).
	Lowstate map[string]any
	// JID is the job it published, if any.
	JID string
	// Runs are how the minions ran cmd.run_bg, by minion id.
	Runs map[string]Run
}

// Run is how a minion ran cmd.run_bg.
type Run struct {
	// Argv, Env and Cwd are what the process was (or, without
	// Config.Exec, would have been) started with.
	Argv []string
	Env  map[string]string
	Cwd  string
	// PID is the process's; a made-up one without Config.Exec.
	PID int
	// Failure is the minion's error return, when it could not run it.
	Failure string
}

type job struct {
	jid      string
	fun      string
	arg      []any
	kwarg    map[string]any
	tgt      any
	tgtType  string
	user     string
	start    time.Time
	expected []string
	rets     map[string]any // by minion, the ones that will return
	after    map[string]int // reads of the job before a return shows
	reads    int
}

type failure struct {
	path        string
	status      int
	contentType string
	body        string
}

// Start starts a stand-in salt-api, closed when the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Username == "" {
		cfg.Username = "saltpeter"
	}
	if cfg.Password == "" {
		cfg.Password = "salt-password"
	}
	if cfg.Eauth == "" {
		cfg.Eauth = "pam"
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 12 * time.Hour
	}
	s := &Server{
		cfg:       cfg,
		minions:   slices.Clone(cfg.Minions),
		tokens:    map[string]time.Time{},
		changed:   make(chan struct{}),
		jobs:      map[string]*job{},
		forbidden: map[string]bool{},
		pidSeq:    40000,
		procs:     map[int]chan struct{}{},
		running:   map[int]*os.Process{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", s.handleLogin)
	mux.HandleFunc("/jobs/", s.handleJobs)
	mux.HandleFunc("/{$}", s.handleRoot)
	s.srv = httptest.NewUnstartedServer(s.withFailures(mux))
	// A client that refuses the certificate is what tests look for, not
	// news for the log.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if cfg.TLS {
		// A certificate of its own, as a salt-api's self-signed one:
		// httptest's is the same for every server.
		cert, certPEM, err := selfSigned()
		if err != nil {
			t.Fatalf("salttest: certificate: %v", err)
		}
		s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.srv.StartTLS()
		s.CAFile = filepath.Join(t.TempDir(), "salt-api-ca.pem")
		if err := os.WriteFile(s.CAFile, certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	} else {
		s.srv.Start()
	}
	s.URL = s.srv.URL
	t.Cleanup(s.close)
	return s
}

func (s *Server) close() {
	s.srv.Close()
	s.mu.Lock()
	procs := slices.Collect(maps.Values(s.running))
	s.mu.Unlock()
	for _, p := range procs {
		_ = p.Kill()
	}
}

// Username is the user /login accepts.
func (s *Server) Username() string { return s.cfg.Username }

// Eauth is the eauth backend /login accepts.
func (s *Server) Eauth() string { return s.cfg.Eauth }

// PasswordFile writes the password to a file, with a newline as editors
// leave one, and returns its path.
func (s *Server) PasswordFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "salt-password")
	if err := os.WriteFile(p, []byte(s.cfg.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Logins counts the successful logins.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Refused counts the 401 answers to requests other than /login.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// ExpireTokens makes every token handed out so far expired.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := time.Now().Add(-time.Second)
	for tok := range s.tokens {
		s.tokens[tok] = past
	}
}

// SetSilent makes the minion id silent, or answer again.
func (s *Server) SetSilent(id string, silent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.minions {
		if s.minions[i].ID == id {
			s.minions[i].Silent = silent
		}
	}
}

// ForbidFunction makes salt-api refuse fun (401), as it does when eauth
// does not allow the function to the user.
func (s *Server) ForbidFunction(fun string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forbidden[fun] = true
}

// FailNext makes the next request to urlPath (a prefix when it ends in
// "/" and is not "/") answer status with body instead.
func (s *Server) FailNext(urlPath string, status int, contentType, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, failure{path: urlPath, status: status, contentType: contentType, body: body})
}

// Calls returns the chunks received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// AwaitCalls waits until at least n chunks were received and returns
// them; it fails the test after 30 s. Call it from the test's goroutine.
func (s *Server) AwaitCalls(t testing.TB, n int) []Call {
	t.Helper()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		s.mu.Lock()
		calls, changed := slices.Clone(s.calls), s.changed
		s.mu.Unlock()
		if len(calls) >= n {
			return calls
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("salttest: %d calls after 30s, want %d", len(calls), n)
		}
	}
}

// AwaitExit waits until the process cmd.run_bg started (Config.Exec) as
// pid has exited; it fails the test after 30 s.
func (s *Server) AwaitExit(t testing.TB, pid int) {
	t.Helper()
	s.mu.Lock()
	done, ok := s.procs[pid]
	s.mu.Unlock()
	if !ok {
		t.Fatalf("salttest: no process %d was started", pid)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("salttest: process %d still runs after 30s", pid)
	}
}

// withFailures answers the failures FailNext queued.
func (s *Server) withFailures(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		var f *failure
		for i, c := range s.fails {
			if r.URL.Path == c.path || (c.path != "/" && strings.HasSuffix(c.path, "/") && strings.HasPrefix(r.URL.Path, c.path)) {
				f = &c
				s.fails = slices.Delete(s.fails, i, i+1)
				break
			}
		}
		s.mu.Unlock()
		if f == nil {
			next.ServeHTTP(w, r)
			return
		}
		if f.contentType != "" {
			w.Header().Set("Content-Type", f.contentType)
		}
		w.WriteHeader(f.status)
		_, _ = io.WriteString(w, f.body)
	})
}

// handleLogin is POST /login: credentials in, a token out.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, map[string]any{"status": "200 OK", "return": "Please log in"})
		return
	}
	if r.Method != http.MethodPost {
		htmlError(w, http.StatusMethodNotAllowed, "")
		return
	}
	if !acceptsJSON(r) {
		htmlError(w, http.StatusNotAcceptable, "")
		return
	}
	chunks, _, status, msg := readLowstate(r)
	if status != 0 {
		htmlError(w, status, msg)
		return
	}
	// The urlencoded processor makes a list of one; a JSON object is
	// taken as it is.
	var creds map[string]any
	if len(chunks) > 0 {
		creds = chunks[0]
	}
	user, _ := creds["username"].(string)
	pass, _ := creds["password"].(string)
	eauth, _ := creds["eauth"].(string)
	if user != s.cfg.Username || pass != s.cfg.Password || eauth != s.cfg.Eauth {
		htmlError(w, http.StatusUnauthorized, "Could not authenticate using provided credentials")
		return
	}
	tok := randomHex(20)
	start := time.Now()
	expire := start.Add(s.cfg.TokenTTL)
	s.mu.Lock()
	s.tokens[tok] = expire
	s.logins++
	s.mu.Unlock()
	w.Header().Set("X-Auth-Token", tok)
	writeJSON(w, http.StatusOK, map[string]any{"return": []any{map[string]any{
		"token":  tok,
		"start":  unixFloat(start),
		"expire": unixFloat(expire),
		"user":   user,
		"eauth":  eauth,
		"perms":  []any{".*", "@runner", "@jobs"},
	}}})
}

// authorize checks the request's token (the X-Auth-Token header, which
// trumps the session cookie) and answers 401 when it is missing,
// unknown or expired.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok := r.Header.Get("X-Auth-Token")
	if tok == "" {
		if c, err := r.Cookie("session_id"); err == nil {
			tok = c.Value
		}
	}
	s.mu.Lock()
	exp, ok := s.tokens[tok]
	ok = ok && time.Now().Before(exp)
	if !ok {
		s.refused++
	}
	s.mu.Unlock()
	if !ok {
		htmlError(w, http.StatusUnauthorized, "")
		return "", false
	}
	return tok, true
}

// handleRoot is POST /: run the lowstate chunks.
func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, map[string]any{"return": "Welcome", "clients": []string{"local", "local_async", "runner"}})
		return
	}
	if r.Method != http.MethodPost {
		htmlError(w, http.StatusMethodNotAllowed, "")
		return
	}
	tok, ok := s.authorize(w, r)
	if !ok {
		return
	}
	if !acceptsJSON(r) {
		htmlError(w, http.StatusNotAcceptable, "")
		return
	}
	chunks, body, status, msg := readLowstate(r)
	if status != 0 {
		htmlError(w, status, msg)
		return
	}
	results := make([]any, 0, len(chunks))
	for _, chunk := range chunks {
		call := Call{Path: r.URL.Path, Token: tok, Body: body, Lowstate: chunk}
		res, status, msg := s.run(&call)
		s.record(call)
		if status != 0 {
			if status == http.StatusUnauthorized {
				s.mu.Lock()
				s.refused++
				s.mu.Unlock()
			}
			if status == http.StatusInternalServerError {
				// rest_cherrypy's own handler answers unexpected errors
				// as data, not as CherryPy's page.
				writeJSON(w, status, map[string]any{"status": status, "return": "An unexpected error occurred"})
				return
			}
			htmlError(w, status, msg)
			return
		}
		results = append(results, res)
	}
	writeJSON(w, http.StatusOK, map[string]any{"return": results})
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	close(s.changed)
	s.changed = make(chan struct{})
}

// run runs one chunk through its client; a non-zero status is an HTTP
// error.
func (s *Server) run(c *Call) (any, int, string) {
	low := c.Lowstate
	client, _ := low["client"].(string)
	switch client {
	case "local_async", "local":
		j, status, msg := s.publish(c)
		if status != 0 {
			return nil, status, msg
		}
		if j == nil {
			// LocalClient answers nothing when no minion matched ("No
			// minions matched the target. No command was sent, no jid
			// was assigned."), which salt-api passes on as {}.
			return map[string]any{}, 0, ""
		}
		if client == "local" {
			// The synchronous client waits for the returns (up to its
			// timeout); the stand-in does not make it wait, and gives
			// every return that will ever come.
			out := map[string]any{}
			maps.Copy(out, j.rets)
			return out, 0, ""
		}
		return map[string]any{"jid": j.jid, "minions": j.expected}, 0, ""
	case "runner":
		fun, _ := low["fun"].(string)
		jid, _ := low["jid"].(string)
		switch fun {
		case "jobs.lookup_jid":
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.visibleLocked(jid), 0, ""
		case "jobs.list_job":
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.infoLocked(jid), 0, ""
		}
		// Other runners exist in Salt; the stand-in has none.
		return nil, http.StatusBadRequest, fmt.Sprintf("salttest: runner %q is not implemented by the stand-in", fun)
	}
	// NetapiClient refuses a client it does not have with a
	// SaltInvocationError, which rest_cherrypy turns into 400.
	return nil, http.StatusBadRequest, ""
}

// publish matches the target and has the matched minions run the
// function; a nil job means nothing matched.
func (s *Server) publish(c *Call) (*job, int, string) {
	low := c.Lowstate
	fun, _ := low["fun"].(string)
	tgt, hasTgt := low["tgt"]
	if fun == "" || !hasTgt {
		// LocalClient.run_job without them raises a TypeError.
		return nil, http.StatusInternalServerError, ""
	}
	tgtType := "glob"
	if v, ok := low["tgt_type"].(string); ok && v != "" {
		tgtType = v
	}
	var arg []any
	switch a := low["arg"].(type) {
	case nil:
	case []any:
		arg = a
	default:
		arg = []any{a}
	}
	kwarg, _ := low["kwarg"].(map[string]any)

	s.mu.Lock()
	forbidden := s.forbidden[fun]
	s.mu.Unlock()
	if forbidden {
		// eauth's refusal (AuthorizationError) is a 401 too.
		return nil, http.StatusUnauthorized, ""
	}

	s.mu.Lock()
	minions := slices.Clone(s.minions)
	s.mu.Unlock()
	matched, err := s.match(minions, tgt, tgtType)
	if err != nil {
		return nil, http.StatusInternalServerError, ""
	}
	j := &job{fun: fun, arg: arg, kwarg: kwarg, tgt: tgt, tgtType: tgtType, user: s.cfg.Username,
		start: time.Now(), rets: map[string]any{}, after: map[string]int{}}
	for _, m := range minions {
		if !slices.Contains(matched, m.ID) {
			continue
		}
		if !m.Unexpected {
			j.expected = append(j.expected, m.ID)
		}
		if m.Silent {
			continue
		}
		ret, run := s.execute(fun, arg, kwarg)
		j.rets[m.ID] = ret
		j.after[m.ID] = m.ReturnAfterPolls
		if run != nil {
			if c.Runs == nil {
				c.Runs = map[string]Run{}
			}
			c.Runs[m.ID] = *run
		}
	}
	if len(j.expected) == 0 && len(j.rets) == 0 {
		return nil, 0, ""
	}
	if j.expected == nil {
		j.expected = []string{}
	}
	s.mu.Lock()
	s.jidSeq++
	j.jid = fmt.Sprintf("%s%06d", j.start.Format("20060102150405"), s.jidSeq%1000000)
	s.jobs[j.jid] = j
	s.mu.Unlock()
	c.JID = j.jid
	return j, 0, ""
}

// match is Salt's matching of a target against the minions' ids: glob
// with fnmatch, list by name (a list or a comma-separated string), pcre
// with re.match (anchored at the start only); the rest through
// Config.Match.
func (s *Server) match(minions []Minion, tgt any, tgtType string) ([]string, error) {
	ids := make([]string, 0, len(minions))
	for _, m := range minions {
		ids = append(ids, m.ID)
	}
	var out []string
	switch tgtType {
	case "glob":
		pat, ok := tgt.(string)
		if !ok {
			return nil, fmt.Errorf("glob target %v is not a string", tgt)
		}
		// fnmatch's [!...] is path.Match's [^...].
		pat = strings.ReplaceAll(pat, "[!", "[^")
		for _, id := range ids {
			if ok, err := path.Match(pat, id); err == nil && ok {
				out = append(out, id)
			}
		}
	case "list":
		var names []string
		switch v := tgt.(type) {
		case string:
			names = strings.Split(v, ",")
		case []any:
			for _, n := range v {
				if s, ok := n.(string); ok {
					names = append(names, s)
				}
			}
		default:
			return nil, fmt.Errorf("list target %v is neither a string nor a list", tgt)
		}
		for _, id := range ids {
			if slices.Contains(names, id) {
				out = append(out, id)
			}
		}
	case "pcre":
		pat, ok := tgt.(string)
		if !ok {
			return nil, fmt.Errorf("pcre target %v is not a string", tgt)
		}
		re, err := regexp.Compile("^(?:" + pat + ")")
		if err != nil {
			// Salt logs the bad expression and matches nothing.
			return nil, nil
		}
		for _, id := range ids {
			if re.MatchString(id) {
				out = append(out, id)
			}
		}
	default:
		if s.cfg.Match != nil {
			for _, id := range s.cfg.Match(tgt, tgtType) {
				if slices.Contains(ids, id) {
					out = append(out, id)
				}
			}
		}
	}
	return out, nil
}

// execute runs a function on a minion and returns its return.
func (s *Server) execute(fun string, arg []any, kwarg map[string]any) (any, *Run) {
	switch fun {
	case "test.ping":
		return true, nil
	case "cmd.run_bg":
		run := s.runBg(arg, kwarg)
		if run.Failure != "" {
			return run.Failure, &run
		}
		return map[string]any{"pid": run.PID}, &run
	}
	// The minion's answer for a function it does not have.
	return fmt.Sprintf("'%s' is not available.", fun), nil
}

// handleJobs is GET /jobs/<jid>: the job's info and its returns so far.
func (s *Server) handleJobs(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		htmlError(w, http.StatusMethodNotAllowed, "")
		return
	}
	if _, ok := s.authorize(w, r); !ok {
		return
	}
	if !acceptsJSON(r) {
		htmlError(w, http.StatusNotAcceptable, "")
		return
	}
	jid, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/jobs/"))
	if err != nil || jid == "" {
		htmlError(w, http.StatusNotFound, "")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	info := s.infoLocked(jid)
	rets := s.visibleLocked(jid)
	if j := s.jobs[jid]; j != nil {
		j.reads++
	}
	writeJSON(w, http.StatusOK, map[string]any{"info": []any{info}, "return": []any{rets}})
}

// visibleLocked is the returns of jid that have come in so far.
func (s *Server) visibleLocked(jid string) map[string]any {
	out := map[string]any{}
	j := s.jobs[jid]
	if j == nil {
		return out
	}
	for m, ret := range j.rets {
		if j.reads >= j.after[m] {
			out[m] = ret
		}
	}
	return out
}

// infoLocked is jobs.list_job's answer. For a jid the master does not
// know, the documentation does not say; the stand-in answers the jid and
// no result.
func (s *Server) infoLocked(jid string) map[string]any {
	j := s.jobs[jid]
	if j == nil {
		return map[string]any{"jid": jid, "Result": map[string]any{}}
	}
	result := map[string]any{}
	for m, ret := range s.visibleLocked(jid) {
		result[m] = map[string]any{"return": ret}
	}
	// The job cache keeps the arguments as published: keyword arguments
	// as a last dict marked __kwarg__.
	args := slices.Clone(j.arg)
	if len(j.kwarg) > 0 {
		kw := maps.Clone(j.kwarg)
		kw["__kwarg__"] = true
		args = append(args, kw)
	}
	if args == nil {
		args = []any{}
	}
	return map[string]any{
		"Arguments":   args,
		"Function":    j.fun,
		"Minions":     j.expected,
		"Result":      result,
		"StartTime":   j.start.Format("2006, Jan 02 15:04:05.000000"),
		"Target":      j.tgt,
		"Target-type": j.tgtType,
		"User":        j.user,
		"jid":         j.jid,
	}
}

// readLowstate decodes a request body by its Content-Type, as
// rest_cherrypy's processors do: JSON (a list of chunks, or one object),
// or a form (one chunk; "arg" always a list). status is non-zero for an
// error.
func readLowstate(r *http.Request) (chunks []map[string]any, body []byte, status int, msg string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil {
		return nil, nil, http.StatusBadRequest, "salttest: reading the body: " + err.Error()
	}
	if len(body) > 1<<20 {
		// max_request_body_size's default.
		return nil, nil, http.StatusRequestEntityTooLarge, ""
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, body, http.StatusBadRequest, "Invalid JSON document"
		}
		switch v := v.(type) {
		case map[string]any:
			return []map[string]any{v}, body, 0, ""
		case []any:
			for _, c := range v {
				m, ok := c.(map[string]any)
				if !ok {
					return nil, body, http.StatusBadRequest, "salttest: a lowstate chunk is not an object"
				}
				chunks = append(chunks, m)
			}
			return chunks, body, 0, ""
		}
		return nil, body, http.StatusBadRequest, "Lowstates must be a list"
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, body, http.StatusBadRequest, ""
		}
		chunk := map[string]any{}
		for k, vs := range form {
			if len(vs) == 1 && k != "arg" {
				chunk[k] = vs[0]
				continue
			}
			list := make([]any, len(vs))
			for i, v := range vs {
				list[i] = v
			}
			chunk[k] = list
		}
		return []map[string]any{chunk}, body, 0, ""
	}
	// YAML and text/plain are accepted by salt-api too; the stand-in
	// speaks JSON and forms only.
	return nil, body, http.StatusNotAcceptable, "Content type not supported"
}

// acceptsJSON tells whether the answer may be JSON, the one format the
// stand-in writes (salt-api writes YAML too).
func acceptsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return a == "" || strings.Contains(a, "application/json") || strings.Contains(a, "*/*") || strings.Contains(a, "application/*")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// cherrypyMessages are the default texts of CherryPy's error pages (the
// standard library's http.server table, which CherryPy copies).
var cherrypyMessages = map[int]string{
	http.StatusBadRequest:            "Bad request syntax or unsupported method",
	http.StatusUnauthorized:          "No permission -- see authorization schemes",
	http.StatusNotFound:              "Nothing matches the given URI",
	http.StatusMethodNotAllowed:      "Specified method is invalid for this resource",
	http.StatusNotAcceptable:         "URI not available in preferred format",
	http.StatusRequestEntityTooLarge: "Entity is too large",
}

// htmlError writes CherryPy's error page, which is what salt-api answers
// for the HTTP errors it raises (401, 400, 406, …).
func htmlError(w http.ResponseWriter, status int, msg string) {
	if msg == "" {
		msg = cherrypyMessages[status]
	}
	title := fmt.Sprintf("%d %s", status, http.StatusText(status))
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html>
<head>
    <meta http-equiv="Content-Type" content="text/html; charset=utf-8"></meta>
    <title>%s</title>
</head>
    <body>
        <h2>%s</h2>
        <p>%s</p>
        <pre id="traceback"></pre>
    <div id="powered_by">
      <span>
        Powered by <a href="http://www.cherrypy.org">CherryPy</a>
      </span>
    </div>
    </body>
</html>
`, title, title, html.EscapeString(msg))
}

func unixFloat(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}

// selfSigned makes a self-signed certificate for 127.0.0.1 and
// localhost, and its PEM.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "salttest salt-api"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
