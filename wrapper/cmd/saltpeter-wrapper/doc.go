// Command saltpeter-wrapper runs one Saltpeter job on this machine and
// reports it to the core (wire protocol v2). A target plugin starts it
// with the dispatch environment (SP_WEBSOCKET_URL and the rest); it checks
// that environment, detaches into a session of its own, prints
// "saltpeter-wrapper: detached pid=N" and exits 0, while the detached copy
// runs the job. A target that starts it as that detaching would (a
// session of its own, no descriptor beyond 0-2, reaped by the target) and
// says so with SP_WRAPPER_DETACHED_BY_TARGET=1 (wire.EnvDetachedByTarget)
// spares it the copy: it prints the same line, naming itself, and runs
// the job itself (wrapper.DetachInPlace). With -env-stdin too it may be
// started before there is a job for it, and wait for its dispatch
// environment on standard input: the local target keeps such a spare, so
// that a dispatch does not wait for a program's start.
//
// Flags: -version prints the version and exits. -env-stdin reads the
// dispatch environment from standard input (KEY=VALUE records, each ended
// by a NUL byte, until EOF) instead of the process environment: that is
// how the ssh target hands it over, since a command line would show the
// token to ps and to sshd's logs. The process that runs the job logs JSON
// to the file named by SP_WRAPPER_LOG, or nowhere.
package main
