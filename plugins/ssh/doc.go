// Package sshtarget is the built-in "ssh" target: it runs jobs on the
// machines a job's target block lists, by logging in to each with SSH and
// starting the wrapper there.
//
//	plugin "target" "ssh" {
//	  config {
//	    user           = "cron"                        # default: the user running the plugin
//	    key_file       = "/etc/saltpeter/id_ed25519"   # required, without a passphrase
//	    known_hosts    = "/etc/saltpeter/known_hosts"  # required: host keys are always checked
//	    deploy_wrapper = false                          # copy the matching wrapper to hosts that lack it
//	    port           = 22                             # for hosts named without one
//	  }
//	}
//	job "x" {
//	  target "ssh" { hosts = ["web1", "web2:2222", "[2001:db8::7]:22"] }
//	}
//
// The machine ids are the hosts as written (duplicates dropped, order
// kept). known_hosts must list each under the name written (the usual
// "[web2]:2222" form for another port); a host it does not list, or lists
// with another key, is refused, and so is one that refuses the key or
// cannot be dialled: those errors wrap target.ErrUnreachable.
//
// Dispatch runs the wrapper (the request's path, else saltpeter-wrapper
// on the remote PATH) as `WRAPPER -env-stdin`, by way of /bin/sh so that
// the login shell does not matter, and writes the dispatch environment to
// the session's standard input as NUL-ended KEY=VALUE records: the token
// is on no command line, where ps and sshd's logs would show it. It
// returns the wrapper's detach line, or an error carrying the remote
// stderr and exit status. Before the wrapper, /bin/sh prints the
// session's process group; a cancelled dispatch kills that group with
// SIGKILL from a second session, which ends a wrapper that has not
// detached (SSH's own "signal" request would be simpler, but OpenSSH
// refuses it to root logins and forced commands). Lines the login
// shell's startup files print first are skipped.
//
// A protocol 1 wrapper (the old tool's) reads its job from its process
// environment and does not detach: Dispatch runs /bin/sh -s and writes it
// a script on standard input that exports the variables (single-quoted,
// so no value is ever parsed by the shell) and starts the wrapper with
// setsid (else nohup) in the background, its standard streams on
// /dev/null, from /. It returns once that script said it started the
// wrapper, without waiting for the wrapper.
//
// Connections are pooled: one SSH connection per host:port, shared by the
// runs that go there (each dispatch is a session on it), kept alive with
// keepalive requests, closed after ten idle minutes, and dialled again
// when it broke. At most 16 dials are in flight at once, and at most 8
// sessions per connection (OpenSSH's MaxSessions defaults to 10).
//
// With deploy_wrapper, a protocol 2 dispatch first makes sure the remote
// wrapper is the one beside this plugin's executable:
// saltpeter-wrapper-linux-<arch> for the host's `uname -m` (x86_64 is
// amd64, aarch64 arm64) when there is one, else saltpeter-wrapper when
// the host's architecture is this machine's. It compares the remote file's sha256 with the
// local one and, when it is missing or differs, copies the local one
// over SFTP to a temporary name beside it and renames it into place, so
// that a wrapper running from the old file keeps it. What a host has is
// remembered, so a host is probed once and copied to once per binary. A
// dispatch that names no wrapper path gets .saltpeter/saltpeter-wrapper
// in the remote user's home directory. Protocol 1 wrappers are not ours
// to deploy.
package sshtarget
