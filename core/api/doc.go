// Package api owns the operator HTTP API (http-api.md): the /api/v1 routes,
// their authentication, the live-updates WebSocket at /api/v1/events, and
// /healthz. It reads run state through store.Store, asks the runner to act
// through control.Control, and follows changes on the events bus.
//
// The API does not own the listener, the web UI, the wire protocol or the
// metrics: Handler returns a handler for /api/, /healthz, /ws and /metrics
// that the core mounts beside the web UI on one mux, routing /ws to the
// hub and /metrics to the Prometheus handler it is given (Config), so that
// the OpenAPI document covers every route. EventsHandler serves the socket
// alone, for the path the old UI connects to.
//
// It records in the audit log (package audit) what it refuses for a
// token's role and the sessions it opens and closes; the control it is
// given records the actions themselves.
//
// Decisions where http-api.md is silent are noted where they are made; the
// ones a client sees are:
//   - lists are wrapped in an object ({"jobs":[…]}, {"runs":[…]});
//   - zero times and optional zero durations are null, never "0001-01-01";
//   - a limit or count above its maximum is lowered to it, not refused;
//   - POST /api/v1/session answers {"name","role","expires_at"};
//     GET tells a UI who it is, DELETE clears the cookie;
//   - GET /api/v1/openapi.json (openapi.json, embedded) describes the API
//     and needs no token: a description is not a secret;
//   - GET /api/v1/audit lists operator actions, newest first, paged by id;
//   - a request that carries an Origin header must come from the core's own
//     address, and with tokens off the Host must be a loopback name, so a
//     page elsewhere cannot act through the operator's browser.
package api
