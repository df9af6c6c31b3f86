package api

import (
	"crypto/rand"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/audit"
	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// Config is what the API needs from the core.
type Config struct {
	Logger  hclog.Logger
	Control control.Control
	Store   store.Store
	Events  *events.Bus
	// Tokens are the configured api_tokens; none means every caller is
	// "local" with the operate role (CheckListen keeps that on loopback).
	Tokens []config.APIToken
	// Listen is the core's listen address, accepted as an Origin beside
	// the request's own Host.
	Listen string
	// Now defaults to time.Now; tests set it to expire sessions.
	Now func() time.Time
	// SessionKey signs session cookies. The core derives it from its site
	// secret, so that a session outlives a restart of the core (and works
	// on every core sharing that secret); empty: a key made at start, and
	// sessions end with the process.
	SessionKey []byte
	// Audit records operator actions the API refuses before the control
	// sees them, and sign-ins; the control records the rest (pass one
	// wrapped by audit.Control). Nil records nothing.
	Audit *audit.Log
	// Wrappers serves the wire protocol (the hub) at GET /ws, and
	// Metrics the Prometheus exposition at GET /metrics, behind the API's
	// tokens. They are routed here, beside the API, so that the OpenAPI
	// document is held to every route the core serves. Nil: 404.
	Wrappers http.Handler
	Metrics  http.Handler
}

// API serves the operator HTTP API.
type API struct {
	log     hclog.Logger
	control control.Control
	store   store.Store
	bus     *events.Bus
	tokens  []token
	listen  string
	now     func() time.Time
	key     []byte // signs session cookies (Config.SessionKey)
	audit   *audit.Log
	// wrappers and metrics are Config's.
	wrappers http.Handler
	metrics  http.Handler
	mux      *http.ServeMux
	// patterns are the mux's routes in the order registered, for the
	// test that holds openapi.json to them.
	patterns []string
}

// New builds the API. It does not listen; mount Handler.
func New(cfg Config) *API {
	a := &API{
		log:      cfg.Logger,
		control:  cfg.Control,
		store:    cfg.Store,
		bus:      cfg.Events,
		listen:   cfg.Listen,
		now:      cfg.Now,
		audit:    cfg.Audit,
		wrappers: cfg.Wrappers,
		metrics:  cfg.Metrics,
		key:      make([]byte, 32),
		mux:      http.NewServeMux(),
	}
	if a.log == nil {
		a.log = hclog.NewNullLogger()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.bus == nil {
		// A bus nobody publishes on: followers and sockets then see only
		// what they read at the start.
		a.bus = events.New()
	}
	if len(cfg.SessionKey) > 0 {
		a.key = cfg.SessionKey
	} else {
		rand.Read(a.key) // never fails: crypto/rand crashes the program instead
	}
	a.tokens = loadTokens(a, cfg.Tokens)
	if len(a.tokens) == 0 {
		a.log.Warn("api tokens are off: every caller may operate; serving on loopback only", "listen", cfg.Listen)
	}
	a.routes()
	return a
}

func (a *API) routes() {
	m := router{a}
	m.HandleFunc("GET /healthz", a.healthz)
	// Unguarded: the API's description is not a secret, and a client
	// reads it before it has a token.
	m.HandleFunc("GET /api/v1/openapi.json", a.openAPI)

	m.HandleFunc("POST /api/v1/session", a.createSession)
	m.HandleFunc("DELETE /api/v1/session", a.deleteSession)
	m.HandleFunc("GET /api/v1/session", a.guard(a.getSession))

	m.HandleFunc("GET /api/v1/jobs", a.guard(a.listJobs))
	m.HandleFunc("GET /api/v1/jobs/{name}", a.guard(a.getJob))
	m.HandleFunc("POST /api/v1/jobs/{name}/run", a.guard(a.runJob))
	m.HandleFunc("POST /api/v1/jobs/{name}/kill", a.guard(a.killJob))
	m.HandleFunc("POST /api/v1/jobs/{name}/enable", a.guard(a.setEnabled(true)))
	m.HandleFunc("POST /api/v1/jobs/{name}/disable", a.guard(a.setEnabled(false)))
	m.HandleFunc("POST /api/v1/jobs/{name}/reset", a.guard(a.resetEnabled))
	m.HandleFunc("GET /api/v1/jobs/{name}/next", a.guard(a.nextRuns))

	m.HandleFunc("GET /api/v1/runs", a.guard(a.listRuns))
	m.HandleFunc("GET /api/v1/runs/{id}", a.guard(a.getRun))
	m.HandleFunc("POST /api/v1/runs/{id}/kill", a.guard(a.killRun))
	m.HandleFunc("POST /api/v1/runs/{id}/machines/{machine}/kill", a.guard(a.killMachine))
	m.HandleFunc("POST /api/v1/runs/{id}/signal", a.guard(a.signalRun))
	m.HandleFunc("GET /api/v1/runs/{id}/machines/{machine}/output", a.guard(a.output))

	m.HandleFunc("POST /api/v1/reload", a.guard(a.reload))

	m.HandleFunc("GET /api/v1/maintenance", a.guard(a.getMaintenance))
	m.HandleFunc("PUT /api/v1/maintenance", a.guard(a.putMaintenance))
	m.HandleFunc("DELETE /api/v1/maintenance", a.guard(a.deleteMaintenance))

	m.HandleFunc("GET /api/v1/notifications", a.guard(a.listNotifications))
	m.HandleFunc("GET /api/v1/audit", a.guard(a.listAudit))

	m.HandleFunc("GET /api/v1/events", a.guard(a.events))

	// The wrappers authenticate in the wire protocol, with their own
	// tokens, not the API's.
	m.Handle("GET /ws", a.mounted(a.wrappers))
	m.Handle("GET /metrics", a.Guard(a.mounted(a.metrics)))
}

// mounted serves h, or 404 when the core mounted nothing there.
func (a *API) mounted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h == nil {
			a.writeError(w, errorf(http.StatusNotFound, CodeNotFound, "There is nothing at %s.", r.URL.Path))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// router registers on the API's mux and records each pattern, so that
// the routes the OpenAPI document is checked against are the ones served,
// not a second list kept by hand.
type router struct{ a *API }

func (r router) Handle(pattern string, h http.Handler) {
	r.a.mux.Handle(pattern, h)
	r.a.patterns = append(r.a.patterns, pattern)
}

func (r router) HandleFunc(pattern string, h http.HandlerFunc) { r.Handle(pattern, h) }

// Handler serves /api/, /healthz, /ws and /metrics. The core mounts it
// on its own mux beside the web UI:
//
//	root.Handle("/api/", h)
//	root.Handle("/healthz", h)
//	root.Handle("/ws", h)
//	root.Handle("/metrics", h)
//
// Unknown paths and wrong methods get the JSON error body the rest of the
// API uses, not net/http's plain text.
func (a *API) Handler() http.Handler {
	return http.HandlerFunc(a.serve)
}

// EventsHandler serves the live-updates socket alone, for mounting where
// Saltpeter's old UI looks for it; it obeys the same tokens and Origin
// check as /api/v1/events.
func (a *API) EventsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer a.recoverPanic(w, r)
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			a.writeError(w, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s is not allowed on %s.", r.Method, r.URL.Path))
			return
		}
		a.guard(a.events)(w, r)
	})
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	defer a.recoverPanic(w, r)
	if _, pattern := a.mux.Handler(r); pattern == "" {
		a.unrouted(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// unrouted answers what the mux has no route for. The mux knows whether
// the path exists under another method; it says so by answering 405 with
// an Allow header, which is kept.
func (a *API) unrouted(w http.ResponseWriter, r *http.Request) {
	h, _ := a.mux.Handler(r)
	probe := &statusProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		if allow := probe.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		a.writeError(w, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s is not allowed on %s.", r.Method, r.URL.Path))
		return
	}
	a.writeError(w, errorf(http.StatusNotFound, CodeNotFound, "There is nothing at %s.", r.URL.Path))
}

// statusProbe records what net/http's own 404/405 handlers would answer.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int)      { p.status = status }

// recoverPanic turns a handler's panic into a logged 500, so one bad
// request neither kills the connection silently nor goes unnoticed.
func (a *API) recoverPanic(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	a.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
	// If the header is already out this writes garbage into nothing; the
	// client then sees a truncated body, which is the truth.
	a.writeError(w, errorf(http.StatusInternalServerError, CodeInternal, "Something went wrong inside the core; its log has the details."))
}
