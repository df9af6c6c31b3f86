package store_test

import (
	"testing"

	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// The core dispenses stores by sdk.KindStore and plugins serve them by
// store.Kind: the two must agree.
func TestKindIsReserved(t *testing.T) {
	if store.Kind != sdk.KindStore {
		t.Fatalf("store.Kind %q, sdk.KindStore %q", store.Kind, sdk.KindStore)
	}
}
