// Command saltpeter-wrapper runs one Saltpeter job on this machine and
// reports it to the core (wire protocol v2). A target plugin starts it
// with the dispatch environment (SP_WEBSOCKET_URL and the rest); it checks
// that environment, detaches into a session of its own, prints
// "saltpeter-wrapper: detached pid=N" and exits 0, while the detached copy
// runs the job.
//
// Flags: -version prints the version and exits. -env-stdin reads the
// dispatch environment from standard input (KEY=VALUE records, each ended
// by a NUL byte, until EOF) instead of the process environment: that is
// how the ssh target hands it over, since a command line would show the
// token to ps and to sshd's logs. The detached copy logs JSON to the file
// named by SP_WRAPPER_LOG, or nowhere.
package main
