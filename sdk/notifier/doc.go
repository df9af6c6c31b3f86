// Package notifier is the notifier plugin kind: the Notifier interface a
// plugin implements and the Event it delivers (notifier.go, event.go),
// and the go-plugin adapter that carries them over gRPC, laid out like
// every kind: plugin.go (Plugin, the adapter), client.go (GRPCClient, the
// core's side), server.go (GRPCServer, the plugin's side), proto/ (the
// service; its generated code is internal) and testing.go (TestGRPCConn,
// a real in-process connection for tests).
//
// The core keeps each notification in its store's outbox and hands it to
// the notifier plugin of the job's notify block, again and again with a
// back-off until the plugin accepts it or says, with Permanent, that
// retrying cannot help. A core that crashes between a delivery and its
// record delivers the event again: Event.ID is the same on every attempt,
// so that a receiver can drop what it already has.
//
// Event is a public schema: its JSON (Event.MarshalJSON) is what the
// webhook notifier posts and the exec notifier writes, and what crosses
// the plugin boundary, so a plugin written in another language reads the
// same document. docs/notifications.md describes it with an example.
//
// A plugin author implements Notifier and serves it with
// sdk.Serve(name, sdk.WithNotifier(factory)); sdk/sdktest.TestNotifier
// checks an implementation against the contract, directly and over the
// adapter.
package notifier
