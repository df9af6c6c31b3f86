// Package killq owns the queue between operators and wrappers: kill and
// signal commands go in from the API (never blocking it), the hub drains
// them and keeps re-sending each to its wrappers until they confirm. A
// command pushed while none waits reaches the hub's channel at once, from
// the pusher's goroutine.
package killq
