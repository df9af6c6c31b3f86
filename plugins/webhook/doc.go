// Package webhook is the built-in "webhook" notifier: it POSTs each event
// to a URL, as the event's JSON (docs/notifications.md) or as the body a
// template makes of it, optionally signed with a shared secret. It also
// holds Poster, the HTTP delivery and its error classes, which the slack
// notifier shares.
//
// Config (the notifier block's config), every key optional but url:
//
//	url           string   required; http:// or https://, no credentials in it (use headers)
//	body_template string   Go text/template over the Event (field names as in Go:
//	                       .ID, .Kind, .Job, .Machines, ...; funcs: json, runURL);
//	                       default: the event's JSON
//	content_type  string   the body's Content-Type; default "application/json"
//	secret        string   HMAC-SHA256 key: sign each body (see below)
//	secret_file   string   the same, read from a file (surrounding blanks trimmed);
//	                       not both
//	headers       map      more request headers, such as { Authorization = "Bearer …" }
//	timeout       duration one attempt's bound; default "10s"
//	ca_file       string   trust this CA (only) for an https:// url; default the system's roots
//
// Every request carries X-Saltpeter-Event-Id (the event's id, the same on
// every attempt: de-duplicate by it) and, with a secret,
// X-Saltpeter-Signature: sha256=HEX, the hex HMAC-SHA256 of the exact
// body bytes under the secret. A receiver recomputes it over the body it
// read, before parsing it, and compares in constant time.
//
// A 2xx answer delivers the event. 408, 429, 5xx, a timeout and a network
// error are retried by the core; a redirect and every other 4xx are
// Permanent (retrying cannot help), as is a body template that fails to
// render. Errors name the URL's host only: a webhook URL often holds its
// secret in its path.
package webhook
