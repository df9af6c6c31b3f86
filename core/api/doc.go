// Package api owns the operator HTTP API (http-api.md): the /api/v1 routes,
// their authentication, the live-updates WebSocket at /api/v1/events, and
// /healthz. It reads run state through store.Store, asks the runner to act
// through control.Control, and follows changes on the events bus.
//
// The API does not own the listener or the other paths the core serves:
// Handler returns a handler for /api/ and /healthz that the core mounts
// beside the web UI and /metrics on one mux; EventsHandler serves the
// socket alone, for the path the old UI connects to.
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
//   - a request that carries an Origin header must come from the core's own
//     address, and with tokens off the Host must be a loopback name, so a
//     page elsewhere cannot act through the operator's browser.
package api
