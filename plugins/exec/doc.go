// Package exec is the built-in "exec" notifier: it runs a program for
// each event, with the event's JSON (docs/notifications.md) on its
// standard input. No shell is involved: command is the argument vector.
//
// Config (the notifier block's config):
//
//	command              list of strings  required: the program (a path, or a name looked up in
//	                                      PATH at Configure) and its arguments
//	env                  map              more environment variables, over the plugin's own
//	timeout              duration         one run's bound; default "30s"; then the program's
//	                                      whole process group is killed
//	permanent_exit_codes list of numbers  exit codes that mean "retrying cannot help"; default none
//
// The program also gets SALTPETER_EVENT_ID, SALTPETER_EVENT_KIND,
// SALTPETER_JOB and SALTPETER_RUN_ID, and never the variables through
// which the core talks to its plugins. It runs in a process group of its
// own, which is killed when the program exits, when the timeout passes
// and when the core cancels the delivery: nothing it started outlives it.
//
// Exit 0 delivers the event. An exit code listed in permanent_exit_codes
// is Permanent; any other failure (another code, 75 EX_TEMPFAIL among
// them, a signal, the timeout) is retried by the core, with the end of
// the program's standard error in the error. Its standard output is
// logged at debug level, never passed on.
package exec
