package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/saltpeter/saltpeter/core/audit"
	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// LocalName is who asked when tokens are off.
const LocalName = "local"

// SessionCookie is the cookie POST /api/v1/session sets.
const SessionCookie = "saltpeter_session"

// sessionTTL bounds a stolen cookie's use; an operator signs in again
// after a working day.
const sessionTTL = 12 * time.Hour

// principal is who made a request.
type principal struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// may reports whether the principal's role allows the method: read is
// GET (and HEAD, which GET routes answer) only.
func (p principal) may(method string) bool {
	if p.Role == config.RoleOperate {
		return true
	}
	return method == http.MethodGet || method == http.MethodHead
}

type principalKey struct{}

// who returns the principal the auth wrapper put in the request.
func who(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

// token is a configured token with its digest decoded once.
type token struct {
	name string
	role string
	hex  string
	sum  [sha256.Size]byte
}

func loadTokens(a *API, in []config.APIToken) []token {
	var out []token
	for _, t := range in {
		raw, err := hex.DecodeString(strings.TrimSpace(t.SHA256))
		if err != nil || len(raw) != sha256.Size {
			// The config validator refuses these; a token that slipped
			// through must not match everything or crash the core.
			a.log.Error("api token ignored: sha256 is not 64 hex digits", "token_name", t.Name)
			continue
		}
		role := t.Role
		if role != config.RoleOperate && role != config.RoleRead {
			a.log.Error("api token given read role: unknown role", "token_name", t.Name, "role", t.Role)
			role = config.RoleRead
		}
		tk := token{name: t.Name, role: role, hex: strings.ToLower(hex.EncodeToString(raw))}
		copy(tk.sum[:], raw)
		out = append(out, tk)
	}
	return out
}

// match finds the token whose digest is sha256(secret). Every configured
// digest is compared, in constant time, so the time taken says nothing
// about which one came close.
func (a *API) match(secret string) (token, bool) {
	sum := sha256.Sum256([]byte(secret))
	found := -1
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], a.tokens[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return token{}, false
	}
	return a.tokens[found], true
}

// authenticate names the caller, from a bearer token or a session cookie.
func (a *API) authenticate(r *http.Request) (principal, *Error) {
	if len(a.tokens) == 0 {
		return principal{Name: LocalName, Role: config.RoleOperate}, nil
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, secret, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
			return principal{}, errorf(http.StatusUnauthorized, CodeUnauthorized, "The Authorization header must be \"Bearer <token>\".")
		}
		t, ok := a.match(strings.TrimSpace(secret))
		if !ok {
			return principal{}, errorf(http.StatusUnauthorized, CodeUnauthorized, "The token is not one this core knows.")
		}
		return principal{Name: t.name, Role: t.role}, nil
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		p, ok := a.verifySession(c.Value)
		if !ok {
			return principal{}, errorf(http.StatusUnauthorized, CodeUnauthorized, "The session has expired or is no longer valid; sign in again with POST /api/v1/session.")
		}
		return p, nil
	}
	return principal{}, errorf(http.StatusUnauthorized, CodeUnauthorized, "A token is required: send \"Authorization: Bearer <token>\".")
}

// session is the signed payload of the session cookie. Nothing is kept on
// the server: the HMAC key (Config.SessionKey, derived from the core's
// site secret) is what makes it trustworthy.
type session struct {
	Name    string `json:"n"`
	Role    string `json:"r"`
	Expires int64  `json:"e"`
}

// sessionMAC binds the payload to the token's digest, so that replacing or
// removing a token ends the sessions made with it.
func (a *API) sessionMAC(payload string, t token) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(payload))
	m.Write([]byte{0})
	m.Write([]byte(t.hex))
	return m.Sum(nil)
}

func (a *API) signSession(t token, expires time.Time) string {
	raw, _ := json.Marshal(session{Name: t.name, Role: t.role, Expires: expires.Unix()})
	payload := base64.RawURLEncoding.EncodeToString(raw)
	return payload + "." + base64.RawURLEncoding.EncodeToString(a.sessionMAC(payload, t))
}

func (a *API) verifySession(v string) (principal, bool) {
	payload, sig, ok := strings.Cut(v, ".")
	if !ok {
		return principal{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return principal{}, false
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return principal{}, false
	}
	var s session
	if json.Unmarshal(raw, &s) != nil {
		return principal{}, false
	}
	for _, t := range a.tokens {
		if t.name != s.Name {
			continue
		}
		if !hmac.Equal(mac, a.sessionMAC(payload, t)) || t.role != s.Role || a.now().Unix() >= s.Expires {
			return principal{}, false
		}
		return principal{Name: t.name, Role: t.role}, true
	}
	return principal{}, false
}

// checkOrigin refuses requests a browser made on behalf of another site
// (CSRF, cross-site WebSocket hijacking) and, with tokens off, requests
// that reached the loopback listener under a foreign name (DNS
// rebinding), where a matching Origin proves nothing.
func (a *API) checkOrigin(r *http.Request) *Error {
	if len(a.tokens) == 0 && !loopbackHost(r.Host) && !strings.EqualFold(r.Host, a.listen) {
		return errorf(http.StatusForbidden, CodeForbidden, "With no api_tokens configured the API answers only to a loopback address, not %q.", r.Host)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		// Not a browser, or a same-origin GET; tokens decide.
		return nil
	}
	u, err := url.Parse(origin)
	if err == nil && u.Host != "" && (strings.EqualFold(u.Host, r.Host) || (a.listen != "" && strings.EqualFold(u.Host, a.listen))) {
		return nil
	}
	return errorf(http.StatusForbidden, CodeForbidden, "Requests from origin %q are not allowed; use the core's own address.", origin)
}

// loopbackHost reports whether a Host header (host or host:port) names
// this machine's loopback interface.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// guard authenticates and authorises a request before h sees it, and puts
// the principal in its context for the `by` of every Control call.
func (a *API) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if e := a.checkOrigin(r); e != nil {
			a.writeError(w, e)
			return
		}
		p, e := a.authenticate(r)
		if e != nil {
			a.writeError(w, e)
			return
		}
		if !p.may(r.Method) {
			e := errorf(http.StatusForbidden, CodeForbidden, "Token %q has the %s role, which may only read; %s needs operate.", p.Name, p.Role, r.Method)
			a.auditRefused(r, p, e)
			a.writeError(w, e)
			return
		}
		ctx := context.WithValue(r.Context(), principalKey{}, p)
		ctx = audit.WithSource(ctx, audit.Source{Via: audit.ViaAPI, Remote: remoteOf(r)})
		h(w, r.WithContext(ctx))
	}
}

type sessionRequest struct {
	Token string `json:"token"`
}

type sessionResponse struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// createSession trades a token for the cookie browsers can carry to the
// events socket. With tokens off there is nothing to trade: the answer
// says who the caller is and sets no cookie.
func (a *API) createSession(w http.ResponseWriter, r *http.Request) {
	if e := a.checkOrigin(r); e != nil {
		a.writeError(w, e)
		return
	}
	data, err := readBody(w, r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req sessionRequest
	if e := decodeJSON(data, &req, len(a.tokens) == 0); e != nil {
		a.writeError(w, e)
		return
	}
	if len(a.tokens) == 0 {
		a.writeJSON(w, http.StatusOK, sessionResponse{Name: LocalName, Role: config.RoleOperate})
		return
	}
	t, ok := a.match(req.Token)
	if !ok || req.Token == "" {
		a.log.Info("session refused: unknown token", "remote_addr", r.RemoteAddr)
		a.writeError(w, errorf(http.StatusUnauthorized, CodeUnauthorized, "The token is not one this core knows."))
		return
	}
	exp := a.now().Add(sessionTTL).UTC().Truncate(time.Second)
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    a.signSession(t, exp),
		Path:     "/",
		Expires:  exp,
		MaxAge:   int(sessionTTL / time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	a.log.Info("session created", "token_name", t.name, "role", t.role, "remote_addr", r.RemoteAddr)
	a.audit.Record(r.Context(), store.AuditEntry{By: t.name, Action: store.AuditSignIn, Via: audit.ViaAPI, Remote: remoteOf(r),
		Detail: t.role + " role, until " + exp.Format(time.RFC3339), Outcome: store.AuditOK})
	a.writeJSON(w, http.StatusOK, sessionResponse{Name: t.name, Role: t.role, ExpiresAt: &exp})
}

// deleteSession clears the cookie; the signed value stays valid until it
// expires, which is the price of keeping no server-side state.
func (a *API) deleteSession(w http.ResponseWriter, r *http.Request) {
	if e := a.checkOrigin(r); e != nil {
		a.writeError(w, e)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	// Only a session that was valid is worth an entry: anyone may ask to
	// drop a cookie.
	if c, err := r.Cookie(SessionCookie); err == nil && len(a.tokens) > 0 {
		if p, ok := a.verifySession(c.Value); ok {
			a.audit.Record(r.Context(), store.AuditEntry{By: p.Name, Action: store.AuditSignOut, Via: audit.ViaAPI,
				Remote: remoteOf(r), Outcome: store.AuditOK})
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// getSession tells a UI who it is signed in as.
func (a *API) getSession(w http.ResponseWriter, r *http.Request) {
	p := who(r)
	a.writeJSON(w, http.StatusOK, sessionResponse{Name: p.Name, Role: p.Role})
}

// Guard protects a handler the core serves beside the API (/metrics) as
// the API's own reads are: a token of any role, or none where the core
// needs none.
func (a *API) Guard(h http.Handler) http.Handler { return a.guard(h.ServeHTTP) }
