// Package notify owns what the core tells people, and getting it to them.
//
// events.go turns what happened into outbox entries, one per notify block
// that asked for it: a run's end (success, failure or its specific kind,
// recovered), a soft timeout, a missed slot, a dead-man check. Each entry
// has an id made of what it is about (run, notifier, kind), so that
// enqueueing it again (a retried store call, a core that restarted) stores
// nothing twice.
//
// deliver.go is the Deliverer: it claims due entries from the store's
// outbox under a lease, hands each to its notifier plugin, and records the
// outcome: delivered; retried later with an exponential back-off; or,
// after the last attempt or an error the plugin marks permanent, failed
// for good, logged with the job, notifier and event named, and counted. A
// core that dies mid-delivery leaves its leases to expire, and another
// core (or itself, restarted) delivers again: at least once, with the
// same event id for receivers to drop repeats.
package notify
