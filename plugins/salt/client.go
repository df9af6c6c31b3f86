package salt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
)

const (
	// requestTimeout bounds one HTTP exchange with salt-api, whatever the
	// caller's context allows: the calls used here answer at once (the
	// waiting is done by polling), so a longer silence is a hung server.
	requestTimeout = 30 * time.Second
	// maxBody bounds an answer read from salt-api.
	maxBody = 16 << 20
	// maxMessage bounds the excerpt of salt-api's answer in an error.
	maxMessage = 300
	// renewBefore is the most a token is renewed before salt-api expires
	// it; a short-lived token is renewed at 90% of its life.
	renewBefore = time.Minute
)

// client speaks salt-api's rest_cherrypy interface: POST /login for a
// token, POST / with lowstate chunks, GET /jobs/<jid> for a job's returns.
// It is safe for concurrent use.
type client struct {
	cfg  config
	http *http.Client
	log  hclog.Logger
	now  func() time.Time

	// login is a one-slot semaphore, so that callers who all find the
	// token expired log in once; unlike a mutex, waiting for it honours
	// the caller's context.
	login chan struct{}
	mu    sync.Mutex
	sess  session
}

// session is a salt-api token and when to renew it.
type session struct {
	token string
	// renewAt is when to log in again before salt-api expires the token;
	// zero when salt-api did not say (a 401 will tell).
	renewAt time.Time
	// gen counts logins, so that a caller whose token was refused can
	// tell whether someone else already logged in again since.
	gen uint64
}

func newClient(cfg config, log hclog.Logger, now func() time.Time) *client {
	return &client{
		cfg:   cfg,
		http:  &http.Client{Transport: cfg.transport()},
		log:   log,
		now:   now,
		login: make(chan struct{}, 1),
	}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// endpoint is the URL of path (which starts with "/") under salt-api's
// URL.
func (c *client) endpoint(path string) string {
	u := *c.cfg.url
	u.Path += path
	return u.String()
}

// lowstate is one command for salt-api's root URL (rest_cherrypy's
// "lowstate" chunk): the client interface and its arguments. arg and
// kwarg go to the function the minions run.
type lowstate struct {
	Client  string         `json:"client"`
	Tgt     any            `json:"tgt"`
	TgtType string         `json:"tgt_type"`
	Fun     string         `json:"fun"`
	Arg     []any          `json:"arg,omitempty"`
	Kwarg   map[string]any `json:"kwarg,omitempty"`
}

// published is what the local_async client answers: the job id and the
// minions the master expects to answer (those its target matched).
type published struct {
	JID     string
	Minions []string
}

// publish runs low through the local_async client. ok is false when no
// minion matched: salt-api then answers an empty object and sends nothing.
func (c *client) publish(ctx context.Context, low lowstate) (published, bool, error) {
	var ret []json.RawMessage
	if err := c.call(ctx, http.MethodPost, "/", []lowstate{low}, &ret); err != nil {
		return published{}, false, err
	}
	where := "salt-api POST " + c.endpoint("/")
	if len(ret) != 1 {
		return published{}, false, fmt.Errorf("%s: %d results for one command", where, len(ret))
	}
	var job struct {
		JID     json.RawMessage `json:"jid"`
		Minions []string        `json:"minions"`
	}
	if err := json.Unmarshal(ret[0], &job); err != nil {
		return published{}, false, fmt.Errorf("%s: unexpected local_async result %s: %w", where, clip(string(ret[0])), err)
	}
	if job.JID == nil {
		return published{}, false, nil
	}
	// A jid is a string of digits; take a number too.
	jid := strings.Trim(string(job.JID), `"`)
	if jid == "" || jid == "null" || strings.ContainsAny(jid, `/\"`) {
		return published{}, false, fmt.Errorf("%s: unexpected jid %s", where, job.JID)
	}
	return published{JID: jid, Minions: job.Minions}, true, nil
}

// returns reads the returns of job jid so far, by minion.
func (c *client) returns(ctx context.Context, jid string) (map[string]json.RawMessage, error) {
	var ret []map[string]json.RawMessage
	if err := c.call(ctx, http.MethodGet, "/jobs/"+url.PathEscape(jid), nil, &ret); err != nil {
		return nil, err
	}
	if len(ret) == 0 || ret[0] == nil {
		return map[string]json.RawMessage{}, nil
	}
	return ret[0], nil
}

// call sends an authenticated request and decodes the "return" member of
// the answer into out. A 401 logs in again once and retries once: the
// token expired or salt-api forgot it (a restart).
func (c *client) call(ctx context.Context, method, path string, body, out any) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	status, err := c.authed(ctx, method, path, s.token, body, out)
	if status != http.StatusUnauthorized {
		return err
	}
	c.log.Info("salt-api refused the token; logging in again", "url", c.endpoint(path))
	if s, err = c.renew(ctx, s.gen); err != nil {
		return err
	}
	status, err = c.authed(ctx, method, path, s.token, body, out)
	if status == http.StatusUnauthorized {
		// salt-api answers 401 too when eauth does not allow the
		// function to this user.
		return fmt.Errorf("%w (with a fresh token: may %s run this through eauth %s? see external_auth in the master's config)",
			err, c.cfg.username, c.cfg.eauth)
	}
	return err
}

// session returns the token to use, logging in when there is none or it
// is about to expire.
func (c *client) session(ctx context.Context) (session, error) {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s.token != "" && (s.renewAt.IsZero() || c.now().Before(s.renewAt)) {
		return s, nil
	}
	return c.renew(ctx, s.gen)
}

// renew logs in, unless another caller did since the login numbered gen.
func (c *client) renew(ctx context.Context, gen uint64) (session, error) {
	select {
	case c.login <- struct{}{}:
	case <-ctx.Done():
		return session{}, fmt.Errorf("wait to log in to salt-api: %w", ctx.Err())
	}
	defer func() { <-c.login }()
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s.token != "" && s.gen != gen {
		return s, nil
	}
	s, err := c.doLogin(ctx)
	if err != nil {
		return session{}, err
	}
	c.mu.Lock()
	s.gen = c.sess.gen + 1
	c.sess = s
	c.mu.Unlock()
	return s, nil
}

// doLogin posts the credentials to /login.
func (c *client) doLogin(ctx context.Context) (session, error) {
	u := c.endpoint("/login")
	where := fmt.Sprintf("log in to salt-api at %s as %s (eauth %s)", u, c.cfg.username, c.cfg.eauth)
	sent := c.now()
	creds := map[string]string{"username": c.cfg.username, "password": c.cfg.password, "eauth": c.cfg.eauth}
	status, raw, hdr, err := c.roundTrip(ctx, http.MethodPost, u, "", creds)
	if err != nil {
		return session{}, fmt.Errorf("%s: %w", where, err)
	}
	if status != http.StatusOK {
		return session{}, fmt.Errorf("%s: %s: %s", where, statusText(status), message(raw))
	}
	// The documented example shows "return" as an object, the code
	// answers a list of one; take either.
	var ret json.RawMessage
	if err := decodeReturn(raw, &ret); err != nil {
		return session{}, fmt.Errorf("%s: %s but %w", where, statusText(status), err)
	}
	var list []loginReturn
	if err := json.Unmarshal(ret, &list); err != nil || len(list) != 1 {
		list = make([]loginReturn, 1)
		if err := json.Unmarshal(ret, &list[0]); err != nil {
			return session{}, fmt.Errorf("%s: unexpected answer %s", where, clip(string(ret)))
		}
	}
	lr := list[0]
	token := lr.Token
	if token == "" {
		token = hdr.Get("X-Auth-Token")
	}
	if token == "" {
		return session{}, fmt.Errorf("%s: salt-api answered without a token", where)
	}
	s := session{token: token}
	// start and expire are the master's clock: only their difference is
	// used, so a skewed clock does not matter.
	if life := time.Duration((lr.Expire - lr.Start) * float64(time.Second)); lr.Start > 0 && life > 0 {
		s.renewAt = sent.Add(life - min(renewBefore, life/10))
		c.log.Info("logged in to salt-api", "url", u, "username", c.cfg.username, "eauth", c.cfg.eauth, "token_life_s", int64(life/time.Second))
	} else {
		c.log.Info("logged in to salt-api; it did not say when the token expires", "url", u, "username", c.cfg.username, "eauth", c.cfg.eauth)
	}
	return s, nil
}

// loginReturn is /login's answer (other members are ignored).
type loginReturn struct {
	Token  string  `json:"token"`
	Start  float64 `json:"start"`
	Expire float64 `json:"expire"`
}

// authed sends a request with token and decodes its "return" into out.
// The status is returned with the error, so that a 401 can be told.
func (c *client) authed(ctx context.Context, method, path, token string, body, out any) (int, error) {
	u := c.endpoint(path)
	status, raw, _, err := c.roundTrip(ctx, method, u, token, body)
	if err != nil {
		return 0, fmt.Errorf("salt-api %s %s: %w", method, u, err)
	}
	if status != http.StatusOK && status != http.StatusAccepted {
		return status, fmt.Errorf("salt-api %s %s: %s: %s", method, u, statusText(status), message(raw))
	}
	if err := decodeReturn(raw, out); err != nil {
		return status, fmt.Errorf("salt-api %s %s: %s but %w", method, u, statusText(status), err)
	}
	return status, nil
}

// roundTrip sends one request, body as JSON, and reads the answer.
func (c *client) roundTrip(ctx context.Context, method, u, token string, body any) (int, []byte, http.Header, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("encode the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(rctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error repeats the method and URL the caller already says.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() == nil && rctx.Err() != nil {
			err = fmt.Errorf("no answer within %s", requestTimeout)
		}
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return resp.StatusCode, nil, nil, fmt.Errorf("%s, then reading the answer: %w", statusText(resp.StatusCode), err)
	}
	if len(raw) > maxBody {
		return resp.StatusCode, nil, nil, fmt.Errorf("%s with an answer over %d bytes", statusText(resp.StatusCode), maxBody)
	}
	return resp.StatusCode, raw, resp.Header, nil
}

// decodeReturn decodes the "return" member of salt-api's JSON answer into
// out.
func decodeReturn(raw []byte, out any) error {
	var env struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("the answer is not JSON (%v): %s", err, clip(string(raw)))
	}
	if env.Return == nil {
		return fmt.Errorf("the answer has no \"return\": %s", clip(string(raw)))
	}
	if err := json.Unmarshal(env.Return, out); err != nil {
		return fmt.Errorf("unexpected \"return\" (%v): %s", err, clip(string(env.Return)))
	}
	return nil
}

func statusText(code int) string {
	return fmt.Sprintf("%d %s", code, http.StatusText(code))
}

// message is salt-api's word in an error answer: the "return" of a JSON
// answer (rest_cherrypy's own errors), else the <p> of CherryPy's HTML
// error page (401, 400, 406 and the like), else the text.
func message(raw []byte) string {
	var env struct {
		Return json.RawMessage `json:"return"`
	}
	if json.Unmarshal(raw, &env) == nil && env.Return != nil {
		var s string
		if json.Unmarshal(env.Return, &s) == nil {
			return clip(s)
		}
		return clip(string(env.Return))
	}
	text := string(raw)
	if i := strings.Index(text, "<p>"); i >= 0 {
		if j := strings.Index(text[i:], "</p>"); j > 0 {
			return clip(html.UnescapeString(stripTags(text[i+3 : i+j])))
		}
	}
	return clip(html.UnescapeString(stripTags(text)))
}

// stripTags drops what is between < and >.
func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>' && in:
			in = false
			b.WriteByte(' ')
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// clip makes s one line of at most maxMessage characters.
func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "(empty answer)"
	}
	if utf8.RuneCountInString(s) <= maxMessage {
		return s
	}
	r := []rune(s)
	return string(r[:maxMessage]) + " …"
}
