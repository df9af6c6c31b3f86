package auth_test

import (
	"bytes"
	"testing"

	"github.com/saltpeter/saltpeter/core/auth"
)

func TestDeriveKey(t *testing.T) {
	a, b := []byte("secret one, long enough for a key"), []byte("secret two, long enough for a key")
	if k := auth.DeriveKey(a, "x"); len(k) != 32 || !bytes.Equal(k, auth.DeriveKey(a, "x")) {
		t.Fatalf("DeriveKey is not a stable 32-byte key: %x", k)
	}
	if bytes.Equal(auth.DeriveKey(a, "x"), auth.DeriveKey(a, "y")) || bytes.Equal(auth.DeriveKey(a, "x"), auth.DeriveKey(b, "x")) {
		t.Error("two purposes, or two secrets, give the same key")
	}
	if bytes.Equal(auth.DeriveKey(a, "x"), a) {
		t.Error("the derived key is the secret")
	}
}
