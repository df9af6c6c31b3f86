// Package memory owns the in-memory Store: run state kept in the core's
// process, lost when it exits. It is the default store and the reference
// for the semantics every durable store must match (see
// core/store/storetest, which this package runs).
package memory
