// Package salt is the built-in "salt" target: it reaches machines through
// a Salt master's salt-api (the rest_cherrypy interface), so a job's
// target block is any Salt target:
//
//	plugin "target" "salt" {
//	  config {
//	    url           = "https://salt-master:8000"
//	    username      = "saltpeter"
//	    password_file = "/etc/saltpeter/salt-password"
//	    eauth         = "pam"
//	    ca_file       = "/etc/saltpeter/salt-api-ca.pem"
//	  }
//	}
//	job "x" {
//	  target "salt" { tgt = "web*"  tgt_type = "glob" }
//	}
//
// Resolve publishes test.ping with the local_async client, which answers
// with the job id and the minions the master expects to answer (those
// whose keys match the target), then reads the job's returns from
// /jobs/<jid> until every expected minion answered or ping_timeout
// passed. It returns every matched minion, the silent ones too, and
// remembers the silent ones (for the latest Resolve of each job and
// target, a bounded number of them): a Dispatch to one fails at once with
// target.ErrUnreachable and the reason, so the core records the machine
// as error (255) instead of losing it.
//
// Dispatch publishes cmd.run_bg to the one minion (tgt_type "list") with
// the wrapper as the command and the dispatch environment as cmd.run_bg's
// env keyword argument (clean_env, so the minion's own environment stays
// out; python_shell false, so no shell reads the command). cmd.run_bg
// gives the command no pipe back, so the wrapper's detach line cannot be
// read: Dispatch returns once the minion returned the wrapper's pid, or,
// when no return came within return_timeout, once salt-api accepted the
// job (the core's connect deadline then decides). A minion the master does
// not know is ErrUnreachable; a minion whose cmd.run_bg failed (a missing
// wrapper) is a plain error with Salt's message, the token cut out.
//
// The salt-api token is kept and renewed before it expires; a 401 from any
// call logs in again once and retries the call once. Passwords, tokens and
// the dispatch environment are never logged.
//
// The package was built from salt-api's and Salt's documentation and is
// tested against salttest, a stand-in salt-api written from the same
// documentation, not against a real Salt master: see README.md.
package salt
