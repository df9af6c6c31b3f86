package notifier

import (
	"testing"

	"github.com/hashicorp/go-plugin"
)

// TestGRPCConn serves impl through this package's go-plugin adapter over a
// real gRPC connection inside the test process and returns the client
// side, so a test crosses the same wire a plugin subprocess would. The
// connection is closed when the test ends.
func TestGRPCConn(t testing.TB, impl Notifier) Notifier {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, plugin.PluginSet{Kind: &Plugin{Impl: impl}})
	t.Cleanup(func() {
		// Close asks the server to stop (go-plugin's controller); stopping
		// it again here would race with that.
		if err := client.Close(); err != nil {
			server.Stop()
		}
	})
	raw, err := client.Dispense(Kind)
	if err != nil {
		t.Fatalf("dispense %s plugin: %v", Kind, err)
	}
	n, ok := raw.(Notifier)
	if !ok {
		t.Fatalf("dispensed %T, not a Notifier", raw)
	}
	return n
}
