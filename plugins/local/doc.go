// Package local is the built-in "local" target: it runs jobs on the
// machine the core runs on. Resolve names this machine (its hostname);
// Dispatch starts the wrapper program here, with exactly the dispatch
// environment plus PATH, HOME and LANG from the plugin's own environment,
// standard input from /dev/null, and never the token on a command line.
//
// A protocol 2 wrapper detaches itself and says so on its standard output;
// Dispatch returns that line, or an error carrying the wrapper's standard
// error when it exits without it. A protocol 1 wrapper does not detach, so
// Dispatch starts it in a session of its own with /dev/null for standard
// input and output and does not wait for it.
//
// The plugin has no configuration: its plugin block's config and a job's
// target block must be empty objects.
package local
