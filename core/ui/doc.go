// Package ui owns the web UI (http-api.md, "Outside /api"): plain HTML,
// CSS and JavaScript modules embedded in the binary, with no build step
// and nothing fetched from elsewhere, so the core serves its UI on a
// machine with no route to the internet and a reviewer reads the very
// code the browser runs.
//
// The UI is a client of the operator API and nothing more: it signs in
// through POST /api/v1/session (the cookie then carries the role to every
// call and to the events socket), reads through the same routes the CLI
// uses, and follows changes on /api/v1/events. It has no server-side
// state and no route of its own under /api/.
//
// Maintenance (#/maintenance) is edited as a whole: PUT replaces global
// and machines together, so the page sends the full draft, and "Back to
// the configuration" is DELETE. The global banner is drawn by the app, not
// a page, from GET /api/v1/maintenance on load, on every socket open and
// on maintenance_updated events, since any page may be open when it
// changes.
//
// Handler serves "/" (the page) and "/ui/" (its assets) under a strict
// Content-Security-Policy: scripts, styles and connections only from the
// core's own origin, no inline script, no framing.
package ui
