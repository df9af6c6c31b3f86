// Package pluginhost runs the core's plugins as subprocesses, with
// hashicorp/go-plugin over gRPC, and hands the rest of the core plain Go
// interfaces (target.Target, store.Store and notifier.Notifier).
//
// A built-in plugin is served by the core's own binary, re-executed as
// `saltpeter plugin KIND NAME` (plugins/builtin); a third-party plugin is
// the program its plugin block's path names. Built-in targets need no
// plugin block. A plugin is started on first use and configured with its
// block's config (a store through store.Configurer: one that is not a
// Configurer accepts only an empty config); one that dies is started
// again on next use, and a call that failed because its plugin died is
// retried once on the new one (store.go says why that is safe for each
// store method; notifier.go why a notification may then arrive twice).
//
// A notifier block is an instance of a notifier plugin, with a process
// of its own: Host.Notifier(name) is the block's process, configured with
// the block's config (notifier.go).
//
// Plugins never outlive the core: the host asks the kernel to kill a
// plugin when the core dies (Pdeathsig), and sdk.Serve makes a plugin exit
// by itself when its core goes away. A plugin's hclog output joins the
// core's log under the name plugin.KIND.NAME.
package pluginhost
