// Package retention owns the pruning of old history: on a timer, it asks
// the store to delete the runs (with their output) that finished longer
// ago than the store block's retention. The store decides how to do it
// without blocking its writers; this package only decides when.
package retention
