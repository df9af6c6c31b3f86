// Package slack is the built-in "slack" notifier: it posts each event to a
// Slack incoming webhook (or anything that takes Slack's incoming-webhook
// payload, such as Mattermost), as a message with a text fallback (what
// notifications and old clients show) and Block Kit blocks: what happened
// to which job, its status, group and trigger, the core's one-line
// message, the first failing machines, a link to the run when the core's
// URL is known, and the event's id.
//
// Config (the notifier block's config):
//
//	url          string   the incoming webhook's URL (https://hooks.slack.com/services/…);
//	                      it is a secret, so prefer url_file
//	url_file     string   the same, read from a file (surrounding blanks trimmed); one of the two
//	max_machines number   how many failing machines the message lists; default 5, 0 for none
//	timeout      duration one attempt's bound; default "10s"
//	ca_file      string   trust this CA (only) for the URL; default the system's roots
//
// Slack's answers are classed as the webhook notifier classes HTTP
// answers: 2xx delivered; 408, 429, 5xx and network errors retried; any
// other 4xx (invalid_payload, no_service, channel_is_archived, …)
// Permanent. Errors name the URL's host only, never its secret path.
// Slack does not de-duplicate: a message delivered twice (see the
// notifier kind's doc) shows twice, each with the same event id.
package slack
