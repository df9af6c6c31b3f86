// Package store owns the core's view of run state: the types the hub, the
// runner and the API read and write, and the Store interface they do it
// through. The in-memory implementation lives in store/memory; durable
// ones arrive as store plugins behind the same interface, so every method
// takes a context and returns errors a remote store can produce.
package store
