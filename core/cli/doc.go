// Package cli owns the saltpeter command line: serve and validate for the
// core, the hidden plugin command that serves built-in plugins when the
// binary re-executes itself, and the operator commands that talk to a
// core's HTTP API (jobs, job, next, run, kill, signal, logs, enable,
// disable, reset, runs, run-status, maintenance).
//
// The core's address is -addr, else SALTPETER_ADDR. The token is read
// from SALTPETER_TOKEN only and sent as "Authorization: Bearer": a flag
// would show it to every user in ps and keep it in shell history. A 401
// or 403 is reported with the API's code and what to do about it.
//
// Listings print tables for people; -json prints the API's JSON as it
// came, for scripts (jobs, job, runs, next, maintenance).
//
// Decisions an operator relies on:
//   - kill X: X is a run when it has the shape of the core's run ids (26
//     characters of Crockford base32, upper case), a job otherwise; -run
//     and -job settle a job named like a run id.
//   - logs RUN with several machines and no -machine prefixes each line
//     with its machine; with one machine the bytes pass unchanged. -f
//     follows every machine at once (?follow=1) and ends when each result
//     is final; a stream that ends without the core's X-Output-Next
//     trailer was cut short and is reported as an error.
//   - run -wait polls the run (the API has no blocking wait) and exits
//     with its status: 0 succeeded, 10 failed, 11 timeout, 12 killed, 13
//     lost, 14 not_started, 15 error, 16 cancelled, 17 skipped, 19 a
//     status this version does not know, 130 when interrupted (the run
//     goes on). They stay clear of the CLI's own 1 (failed), 2 (usage)
//     and 3 (409 conflict). A progress line shows only when stdout is a
//     terminal.
package cli
