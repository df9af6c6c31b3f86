// Command saltpeter-wrapper runs one Saltpeter job on this machine and
// reports it to the core (wire protocol v2). A target plugin starts it
// with the dispatch environment (SP_WEBSOCKET_URL and the rest); it checks
// that environment, detaches into a session of its own, prints
// "saltpeter-wrapper: detached pid=N" and exits 0, while the detached copy
// runs the job.
//
// Flags: -version prints the version and exits. The detached copy logs
// JSON to the file named by SP_WRAPPER_LOG, or nowhere.
package main
