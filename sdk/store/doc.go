// Package store is the store plugin kind: the run, machine, output and
// override types the core keeps and the Store interface a store
// implements (store.go), and the go-plugin adapter that carries it over
// gRPC, laid out like every kind: plugin.go (Plugin, the adapter),
// client.go (GRPCClient, the core's side), server.go (GRPCServer, the
// plugin's side), proto/ (the service; its generated code is internal)
// and testing.go (TestGRPCConn, a real in-process connection for tests).
// convert.go and errors.go hold what both sides share: the message
// conversions and the mapping of store errors to gRPC statuses and back;
// append.go the batching of output writes.
//
// The core's hub, runner and API read and write through Store; the
// in-memory store (core/store/memory) implements it in the core, and
// durable stores (SQLite, PostgreSQL, a third party's) implement it as
// plugins, served with sdk.Serve(name, sdk.WithStore(factory)). A store
// that takes a config implements Configurer too. Every method takes a
// context and returns errors a remote store can produce, and those errors
// cross the plugin boundary intact: errors.Is finds ErrNotFound and the
// rest in what GRPCClient returns. sdktest.TestStore is the suite every
// implementation must pass, directly and over TestGRPCConn.
//
// AppendOutput does not cost a round trip per chunk over the wire: the
// client sends chunks in batches on one long-lived stream, one batch in
// flight at a time, so concurrent writers share a round trip (and a
// store's commit) while each still gets its own result.
//
// # Output cap
//
// A machine added with an OutputCap keeps at most about that many bytes of
// output; every store does it the same way (capping.go has the parts that
// are not SQL, and the conformance suite checks the rest):
//
//   - Offsets are those of the machine's whole output, whatever is
//     dropped: a chunk keeps the offsets it was stored at, in the whole
//     output and in its stream, so a follower's offset never moves.
//   - A chunk that starts before HeadBytes(cap) is in the head and is never
//     dropped, nor is the machine's newest chunk.
//   - After each append, the oldest chunk that may be dropped is dropped,
//     in the append's transaction, as long as the bytes left stored are at
//     least the cap (see ToDrop): the middle goes, the head and a tail of
//     at least the cap less the head stay, and a machine stores at most
//     the cap plus one chunk (a wrapper sends at most 32 KiB in one).
//   - OutputBytes still counts every byte; OutputDropped the dropped ones.
//   - ReadOutput shows each run of dropped bytes as one DroppedMarker.
//
// Dropping in the append's transaction costs about one extra delete per
// chunk once a machine is past its cap, and nothing before: the write path
// never waits for a separate clean-up, and a crash never leaves a machine
// above its cap.
package store
