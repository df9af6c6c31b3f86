// Package local is the built-in "local" target: it runs jobs on the
// machine the core runs on. Resolve names this machine (its hostname);
// Dispatch starts the wrapper program here (sdk/launch), with exactly the
// dispatch environment plus PATH, HOME and LANG from the plugin's own
// environment (and, for protocol 2, wire.EnvDetachedByTarget), standard
// input from /dev/null, and never the token on a command line.
//
// A protocol 2 wrapper is started already detached (launch.Command.
// Detached): in a session of its own, with no descriptor beyond 0-2, and
// told so, so that it runs the job itself instead of re-executing itself
// to detach; a wrapper that does not know the variable detaches itself
// as before. The default wrapper (a job without wrapper.path) is also
// started on one P (launch.Command.OneP: GOMAXPROCS=1 and
// wire.EnvNarrowedByTarget, which it keeps from its job), which saves it
// resizing the runtime itself. Dispatch returns its detach line, or an
// error carrying its standard error when it exits without it. The plugin
// reaps the wrapper whenever it exits; a plugin that stops first leaves
// it to init, and the job runs on.
//
// Once it has dispatched the default wrapper (a job without
// wrapper.path), the plugin keeps a spare one started for the next
// dispatch (spare.go): "saltpeter-wrapper -env-stdin", started as above
// with its core's URLs in its environment, has done its program's start,
// which is most of a short job's dispatch time, and waits for its
// dispatch environment, the token with it, on standard input. The spare
// is started once dispatching has paused for 20 ms, so that its start
// does not compete for the CPU with the runs just dispatched. While a
// spare runs, its program file cannot be written over ("text file
// busy"): install a new wrapper by renaming it into place, and the next
// dispatch drops the old spare.
//
// A protocol 1 wrapper does not detach, so Dispatch starts it in a session
// of its own with /dev/null for standard input and output and does not
// wait for it.
//
// The plugin has no configuration: its plugin block's config and a job's
// target block must be empty objects.
package local
