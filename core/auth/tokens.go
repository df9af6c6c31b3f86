package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every verification failure. The text says why
// (malformed, unknown key, mismatch) but never repeats the credential.
var ErrInvalid = errors.New("invalid credential")

// Credential layout, before base64url (no padding):
//
//	kind (1) | key id (4) | [nonce (16), sessions only] | HMAC-SHA256 (32)
//
// The MAC covers a label naming the kind and format version, the key id,
// the nonce, and the run id and machine, each length-prefixed, so no two
// inputs share a MAC and a bootstrap token is never a valid session.
const (
	kindBootstrap byte = 'b'
	kindSession   byte = 's'
	keyIDLen           = 4
	nonceLen           = 16
	macLen             = sha256.Size

	labelBootstrap = "saltpeter wrapper bootstrap v1"
	labelSession   = "saltpeter wrapper session v1"
	labelKeyID     = "saltpeter key id v1"
)

var enc = base64.RawURLEncoding

type key struct {
	id     [keyIDLen]byte
	secret []byte
}

// Tokens issues and checks wrapper credentials with a site secret.
type Tokens struct {
	keys []key // keys[0] signs; all verify
}

// NewTokens returns Tokens that sign with secret and also accept
// credentials made with any of older (for a secret rotation: cores that
// already have the new secret keep accepting wrappers dispatched under
// the old one). The key id in a credential is derived from the secret,
// so it tells which secret to check with without revealing it.
//
// Secrets come from LoadOrCreateSecret, which guarantees at least
// MinSecretBytes; an empty secret is a programming error and panics.
func NewTokens(secret []byte, older ...[]byte) *Tokens {
	t := &Tokens{}
	for i, s := range append([][]byte{secret}, older...) {
		if len(s) == 0 {
			panic(fmt.Sprintf("auth: NewTokens: secret %d is empty", i))
		}
		k := key{secret: append([]byte(nil), s...)}
		m := hmac.New(sha256.New, k.secret)
		m.Write([]byte(labelKeyID))
		copy(k.id[:], m.Sum(nil))
		t.keys = append(t.keys, k)
	}
	return t
}

func mac(k key, label string, nonce []byte, runID, machine string) []byte {
	m := hmac.New(sha256.New, k.secret)
	var n [binary.MaxVarintLen64]byte
	for _, part := range [][]byte{[]byte(label), k.id[:], nonce, []byte(runID), []byte(machine)} {
		m.Write(n[:binary.PutUvarint(n[:], uint64(len(part)))])
		m.Write(part)
	}
	return m.Sum(nil)
}

func (t *Tokens) issue(kind byte, label string, nonce []byte, runID, machine string) string {
	k := t.keys[0]
	b := make([]byte, 0, 1+keyIDLen+len(nonce)+macLen)
	b = append(b, kind)
	b = append(b, k.id[:]...)
	b = append(b, nonce...)
	b = append(b, mac(k, label, nonce, runID, machine)...)
	return enc.EncodeToString(b)
}

func (t *Tokens) verify(cred string, kind byte, label string, nlen int, runID, machine string) error {
	want := 1 + keyIDLen + nlen + macLen
	if enc.EncodedLen(want) != len(cred) {
		return fmt.Errorf("malformed: %w", ErrInvalid)
	}
	b, err := enc.DecodeString(cred)
	if err != nil || len(b) != want {
		return fmt.Errorf("malformed: %w", ErrInvalid)
	}
	if b[0] != kind {
		return fmt.Errorf("wrong kind: %w", ErrInvalid)
	}
	id, rest := b[1:1+keyIDLen], b[1+keyIDLen:]
	nonce, got := rest[:nlen], rest[nlen:]
	for _, k := range t.keys {
		if !hmac.Equal(k.id[:], id) {
			continue
		}
		if hmac.Equal(got, mac(k, label, nonce, runID, machine)) {
			return nil
		}
		return fmt.Errorf("mismatch: %w", ErrInvalid)
	}
	return fmt.Errorf("unknown key: %w", ErrInvalid)
}

// Bootstrap returns the bootstrap token of a run's machine. It is
// deterministic: every core with the secret computes the same token, and
// single use is enforced by the hub.
func (t *Tokens) Bootstrap(runID, machine string) string {
	return t.issue(kindBootstrap, labelBootstrap, nil, runID, machine)
}

// VerifyBootstrap checks a bootstrap token for a run's machine; errors
// wrap ErrInvalid.
func (t *Tokens) VerifyBootstrap(token, runID, machine string) error {
	if err := t.verify(token, kindBootstrap, labelBootstrap, 0, runID, machine); err != nil {
		return fmt.Errorf("bootstrap token: %w", err)
	}
	return nil
}

// NewSession returns a fresh session credential for a run's machine: a
// random nonce bound to both by the MAC, checkable by any core with the
// secret, without state. It stays valid for as long as the hub lets the
// machine resume (not final).
func (t *Tokens) NewSession(runID, machine string) string {
	nonce := make([]byte, nonceLen)
	if _, err := rand.Read(nonce); err != nil {
		// crypto/rand does not fail on Linux; a broken one must not
		// yield guessable sessions.
		panic(fmt.Sprintf("auth: read random nonce: %v", err))
	}
	return t.issue(kindSession, labelSession, nonce, runID, machine)
}

// VerifySession checks a session credential for a run's machine; errors
// wrap ErrInvalid.
func (t *Tokens) VerifySession(session, runID, machine string) error {
	if err := t.verify(session, kindSession, labelSession, nonceLen, runID, machine); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	return nil
}
