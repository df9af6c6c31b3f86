package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SecretBytes is the size of a generated site secret.
const SecretBytes = 32

// MinSecretBytes is the shortest secret LoadOrCreateSecret accepts from an
// existing file.
const MinSecretBytes = 32

// ErrLoosePermissions is wrapped by the error LoadOrCreateSecret returns
// beside a usable secret when the file can be read by group or others.
var ErrLoosePermissions = errors.New("secret file readable by group or others")

// LoadOrCreateSecret reads the site secret at path, or creates it: 32
// random bytes, mode 0600, its folder created (0700) if missing. Creation
// is atomic (written aside, then linked into place), so two cores starting
// at once end up with the same secret.
//
// A file whose mode lets group or others in is still used: the secret is
// returned together with an error wrapping ErrLoosePermissions, which the
// caller should log as a warning (errors.Is) and otherwise ignore. Every
// other error comes with a nil secret. An existing file shorter than
// MinSecretBytes is refused. The file's bytes are the key as they are
// (no trimming), so a secret copied between hosts must be copied exactly.
func LoadOrCreateSecret(path string) ([]byte, error) {
	secret, err := readSecret(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create secret folder: %w", err)
	}
	fresh := make([]byte, SecretBytes)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("generate secret: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return nil, fmt.Errorf("create secret %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create secret %s: %w", path, err)
	}
	if _, err := tmp.Write(fresh); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write secret %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write secret %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write secret %s: %w", path, err)
	}
	// Link fails if another process created the file meanwhile: use theirs.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readSecret(path)
		}
		return nil, fmt.Errorf("create secret %s: %w", path, err)
	}
	return fresh, nil
}

func readSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read secret %s: not a regular file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	if len(b) < MinSecretBytes {
		return nil, fmt.Errorf("read secret %s: %d bytes, need at least %d", path, len(b), MinSecretBytes)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return b, fmt.Errorf("secret %s has mode %04o, want 0600: %w", path, fi.Mode().Perm(), ErrLoosePermissions)
	}
	return b, nil
}

// DeriveKey returns a key for one purpose made from the site secret
// (HMAC-SHA256 of the purpose under it), so that each use of the secret
// has a key of its own and none can be turned into another.
func DeriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("saltpeter derived key v1\x00" + purpose))
	return m.Sum(nil)
}
