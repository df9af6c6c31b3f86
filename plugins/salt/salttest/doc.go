// Package salttest is a stand-in salt-api for tests: an httptest server
// that speaks the part of the rest_cherrypy interface the salt target
// uses, written from salt-api's documentation (and, where that is silent,
// from what Salt's code does, said so in a comment), since no Salt master
// runs here.
//
//	s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{
//		{ID: "web1"}, {ID: "web2", Silent: true},
//	}})
//	// config: {"url": s.URL, "username": s.Username(), "password_file": s.PasswordFile(t)}
//
// What it serves:
//
//   - POST /login: JSON or form credentials against Config's; a token that
//     expires after Config.TokenTTL (or when ExpireTokens says so).
//   - POST /: lowstate chunks (a JSON list, one JSON object, or a form)
//     for the clients local_async (publish: {"jid", "minions"}, or {} when
//     nothing matched), local (synchronous returns) and runner
//     (jobs.lookup_jid, jobs.list_job).
//   - GET /jobs/<jid>: {"info": [...], "return": [{minion: return}]}.
//
// Without a token, with an expired one, or for a function ForbidFunction
// names, it answers 401 with CherryPy's HTML error page, as salt-api does.
//
// Minions match targets of type glob, list and pcre as Salt's matchers do;
// other target types (grain, pillar, compound, …) go to Config.Match. A
// matched minion is in the job's expected "minions" unless Unexpected; it
// returns unless Silent, after ReturnAfterPolls reads of the job. Minions
// run test.ping and cmd.run_bg; cmd.run_bg computes the command line and
// environment as Salt's cmdmod does, and, with Config.Exec, runs it on
// this machine.
//
// Every chunk received is recorded (Calls, AwaitCalls), so that tests can
// see what reached "Salt": which function, which target, which arguments.
package salttest
