package notifier_test

import (
	"testing"

	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/notifier"
)

// The core dispenses notifiers by sdk.KindNotifier and plugins serve them
// by notifier.Kind: the two must agree.
func TestKindIsReserved(t *testing.T) {
	if notifier.Kind != sdk.KindNotifier {
		t.Fatalf("notifier.Kind %q, sdk.KindNotifier %q", notifier.Kind, sdk.KindNotifier)
	}
}
