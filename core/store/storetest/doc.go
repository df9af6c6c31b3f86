// Package storetest owns the Store conformance suite: Run drives any
// store.Store through the semantics documented in core/store, so the
// in-memory store and every durable one are held to the same contract.
package storetest
