// Package store is the store plugin kind: the run, machine, output and
// override types the core keeps and the Store interface a store
// implements (store.go; the notification outbox's types in outbox.go,
// the audit log's in audit.go, LastRuns's in lastruns.go), and the
// go-plugin adapter that carries it
// over gRPC, laid out like every kind: plugin.go (Plugin, the adapter),
// client.go (GRPCClient, the core's side), server.go (GRPCServer, the
// plugin's side), proto/ (the service; its generated code is internal)
// and testing.go (TestGRPCConn, a real in-process connection for tests).
// convert.go and errors.go hold what both sides share: the message
// conversions and the mapping of store errors to gRPC statuses and back;
// append.go the batching of output writes, updates.go that of machine
// updates.
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
// store's commit) while each still gets its own result. UpdateMachine is
// batched the same way, in unary UpdateMachines calls, each item
// answering exactly the error its own call would have; a plugin built
// before UpdateMachines gets UpdateMachine calls instead. RecordFire and
// FireRun, many at once when a schedule's jobs fire together, go the same
// way in Fires calls, and GetRun and UpdateRun, many at once when runs
// end together, in GetRuns and UpdateRuns calls.
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
//     the cap plus one chunk (saltpeter-wrapper sends at most
//     wire.MaxOutputChunk in one), or its head chunks and its newest where
//     those alone are more.
//   - OutputBytes still counts every byte; OutputDropped the dropped ones.
//   - ReadOutput shows each run of dropped bytes as one DroppedMarker.
//
// Dropping in the append's transaction costs about one extra delete per
// chunk once a machine is past its cap, and nothing before: the write path
// never waits for a separate clean-up, and a crash never leaves a machine
// above its cap.
//
// # Outbox
//
// Notifications (a run finished, a slot was missed, ...) go through an
// outbox in the store, so that a core crash or a notifier that is down
// delays them and never drops or duplicates them. outbox.go has the types
// and the parts every store shares (PrepareNotifications, CheckFinish,
// NotificationResult.Apply); the conformance suite checks the rest.
//
//   - Enqueueing. A notification is stored pending, untried, due at its
//     DueAt (its CreatedAt when unset). Its ID is the caller's and
//     unique: enqueueing an ID already stored leaves the stored one as it
//     is, without an error, so a call retried after a crash or a plugin
//     death never stores one twice. The notifications of a run's end go
//     in RunUpdate.Notifications, in the update's transaction: a run is
//     never recorded final without them, nor they without it. Other
//     events (a missed slot, a dead-man check, a soft timeout) go through
//     EnqueueNotifications.
//   - Claiming. ClaimNotifications leases due notifications to an owner
//     (a core process) until Now+Lease, oldest DueAt first, and skips
//     those a lease holds, the owner's own included. The lease owner and
//     end are stored with the notification, and the claim is one
//     transaction (PostgreSQL picks FOR UPDATE SKIP LOCKED), so two
//     owners never hold one notification at once, across cores sharing
//     the store. A core that dies while delivering holds nothing once its
//     leases end: the notifications are claimed again, late but not lost.
//     A lease must outlast a delivery, and the cores' clocks agree to
//     well within one.
//   - Finishing. FinishNotification records how the owner's delivery
//     ended and releases the lease: delivered (DeliveredAt); failed for
//     good (state failed, never tried again); or one more failed attempt,
//     pending again from RetryAt. Attempts counts the failed attempts and
//     LastError holds the last one's error; the backoff between retries
//     and the last retry are the caller's choice. An owner whose lease
//     expired may still finish as long as nobody claimed the notification
//     since (the delivery happened: recording it prevents a second one);
//     once another owner has claimed it, the finish fails with
//     ErrLeaseLost (an ErrNotFound) and changes nothing. The same finish
//     again (same owner, same result, same At) answers nil, so a retried
//     call is safe.
//   - Delivery is at least once at the notifier: a core that delivers and
//     dies before it finishes leaves the notification to be claimed and
//     delivered again when the lease ends. A notifier that can should
//     drop a second delivery by the notification's ID.
//   - Listing and pruning. ListNotifications lists newest first, by state
//     and job, for the API and to count failures. PruneRuns deletes the
//     delivered and failed notifications created before its time, in
//     bounded batches like the runs; pending ones are never pruned,
//     however old.
//
// # Audit log
//
// AppendAudit appends an operator action (AuditEntry) and answers the ID
// the store gave it: positive, larger for every later append, never
// reused, even after a prune (it orders and pages the log, not At, since
// the clocks of cores sharing a store may disagree). An entry needs an At
// (PrepareAudit, which every store calls, refuses one without); the
// caller's ID is ignored. ListAudit answers newest (largest ID) first,
// by job, token and action, and pages with BeforeID. PruneRuns deletes
// the entries whose At is before its time, in bounded batches, uncounted.
// AppendAudit is not idempotent: a call retried after a plugin died may
// meet its own first try (the core's plugin host looks for it first).
//
// # Many jobs in one call
//
// A core with thousands of jobs must not make a call per job where one
// will do. LastRuns answers each job's latest run (ListRuns's order), its
// machines counted by status and only the first few returned (by name:
// a run may have ten thousand), and LastFires each job's latest recorded
// slot; a durable store reads through its indexes only what it answers.
// A plugin built before them answers errors.ErrUnsupported, and the core
// then asks job by job (ListRuns with Limit 1, LastFire), passing the
// run through SummarizeRun so that both ways answer alike.
package store
