// Package events owns the core's in-process change feed: the hub and the
// runner publish what changed, the API's followers and the live-updates
// socket subscribe. Publishing never blocks; a subscriber that falls
// behind loses events and is told so, and re-reads the store.
package events
