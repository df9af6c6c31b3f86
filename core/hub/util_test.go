package hub_test

import (
	"bytes"
	"testing"

	"github.com/saltpeter/saltpeter/core/auth"
	"github.com/saltpeter/saltpeter/core/hub"
)

func newTokens(t *testing.T, b byte) (*auth.Tokens, []byte) {
	t.Helper()
	s := bytes.Repeat([]byte{b}, 32)
	return auth.NewTokens(s), s
}

func hubExpectation(run, machine string) hub.Expectation {
	return hub.Expectation{RunID: run, Machine: machine, Protocol: 2, Spec: testSpec}
}
