// Package email is the built-in "email" notifier: it sends each event as
// a plain-text mail through an SMTP server (a submission port, usually
// 587, with STARTTLS and a login).
//
// Config (the notifier block's config):
//
//	host                string   required: the SMTP server's name (also what its certificate must name)
//	port                number   default 587 (465 with tls = true)
//	starttls            bool     default true: upgrade to TLS with STARTTLS before anything else,
//	                             and fail when the server does not offer it
//	tls                 bool     default false: implicit TLS from the first byte (SMTPS, port 465);
//	                             starttls is then not used
//	username            string   log in (AUTH PLAIN, else AUTH LOGIN, whichever the server offers)
//	password            string   the login's password; prefer password_file
//	password_file       string   the same, read from a file (surrounding blanks trimmed); not both
//	insecure_plain_auth bool     default false: allow the login over a connection without TLS,
//	                             which sends the password in the clear
//	from                string   required: the sender, such as "Saltpeter <cron@example.com>"
//	to                  list     required: the recipients' addresses
//	subject_template    string   Go text/template over the Event (funcs: headline, json);
//	                             default "[saltpeter] {{headline .}}", such as
//	                             "[saltpeter] backup-db failed"
//	max_machines        number   how many machines that did not succeed the mail lists; default 20
//	ca_file             string   trust this CA (only) for the server's certificate; default the
//	                             system's roots
//	timeout             duration one delivery's bound, connection to QUIT; default "30s"
//	helo                string   the name this host gives in EHLO; default its host name
//
// TLS is always verified. The password never crosses a connection without
// TLS unless insecure_plain_auth = true says so.
//
// Each mail carries the event's id in its Message-ID (<saltpeter.ID@the
// sender's domain>, the same on every attempt, so that mail systems drop
// a duplicate) and in X-Saltpeter-Event-Id, with X-Saltpeter-Event-Kind
// and X-Saltpeter-Job for filters, and Auto-Submitted: auto-generated.
//
// A 5xx answer from the server (a refused login, a refused recipient, a
// refused message), a server that does not offer STARTTLS or AUTH when
// they are needed, and a subject template that fails to render are
// Permanent, with the server's answer in the error; a 4xx answer, a
// timeout and a network error are retried by the core. One recipient
// refused fails the delivery before the message is sent, so a retry does
// not mail the others twice.
package email
