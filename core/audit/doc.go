// Package audit owns the audit log of operator actions: who ran, killed,
// signalled, enabled or disabled a job, changed maintenance, reloaded the
// configuration or signed in, through which surface, when, and how it
// ended. Control wraps the core's control.Control so that every action
// through it is recorded whichever surface asked (the HTTP API, the
// events socket, a SIGHUP); the API records what it refuses before the
// control sees it (a read-only token asking to act). Entries go to the
// store, so several cores sharing one keep one log.
package audit
