// Package store is the store plugin kind's contract: the run, machine,
// output and override types the core keeps, and the Store interface a
// store implements. The core's hub, runner and API read and write through
// it; the in-memory store (core/store/memory) implements it today, and
// durable stores (SQLite, PostgreSQL, a third party's) will implement it
// as plugins. Every method takes a context and returns errors a remote
// store can produce; sdktest.TestStore is the suite every implementation
// must pass.
package store
