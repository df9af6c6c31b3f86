// Package auth owns the wrapper credentials of wire protocol v2: the site
// secret every core of a site shares, the bootstrap token a wrapper gets
// at dispatch, and the session credential the core returns in the connect
// ack. Both credentials are HMACs, so any core holding the secret checks
// them without shared state; single use of a bootstrap token is the hub's
// business. Neither credential may be logged.
package auth
