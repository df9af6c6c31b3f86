package auth_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/saltpeter/saltpeter/core/auth"
)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func mustTokens(t *testing.T, s []byte, older ...[]byte) *auth.Tokens {
	t.Helper()
	return auth.NewTokens(s, older...)
}

// flip changes one character of a base64url credential, keeping it valid
// base64url.
func flip(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestCredentials(t *testing.T) {
	tk := mustTokens(t, secret(1))
	other := mustTokens(t, secret(2))
	rotated := mustTokens(t, secret(2), secret(1))

	boot := tk.Bootstrap("run1", "web1")
	sess := tk.NewSession("run1", "web1")
	if boot != tk.Bootstrap("run1", "web1") {
		t.Errorf("Bootstrap is not deterministic")
	}
	if s2 := tk.NewSession("run1", "web1"); s2 == sess {
		t.Errorf("two sessions are equal: nonce not random")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(boot)
	forgedMAC := base64.RawURLEncoding.EncodeToString(append(raw[:len(raw)-32:len(raw)-32], bytes.Repeat([]byte{7}, 32)...))

	type verifyFn func(tk *auth.Tokens, cred, run, machine string) error
	boots := func(tk *auth.Tokens, c, r, m string) error { return tk.VerifyBootstrap(c, r, m) }
	sessions := func(tk *auth.Tokens, c, r, m string) error { return tk.VerifySession(c, r, m) }
	cases := []struct {
		name    string
		tk      *auth.Tokens
		verify  verifyFn
		cred    string
		run, m  string
		wantErr bool
	}{
		{"bootstrap ok", tk, boots, boot, "run1", "web1", false},
		{"bootstrap other run", tk, boots, boot, "run2", "web1", true},
		{"bootstrap other machine", tk, boots, boot, "run1", "web2", true},
		{"bootstrap split ambiguity", tk, boots, tk.Bootstrap("run1w", "eb1"), "run1", "web1", true},
		{"bootstrap other secret", other, boots, boot, "run1", "web1", true},
		{"bootstrap rotated old key", rotated, boots, boot, "run1", "web1", false},
		{"bootstrap forged mac", tk, boots, forgedMAC, "run1", "web1", true},
		{"bootstrap one char changed", tk, boots, flip(boot, len(boot)-3), "run1", "web1", true},
		{"bootstrap key id changed", tk, boots, flip(boot, 2), "run1", "web1", true},
		{"bootstrap truncated", tk, boots, boot[:len(boot)-1], "run1", "web1", true},
		{"bootstrap extended", tk, boots, boot + "AA", "run1", "web1", true},
		{"bootstrap garbage", tk, boots, "!!!not-base64!!!", "run1", "web1", true},
		{"bootstrap empty", tk, boots, "", "run1", "web1", true},
		{"bootstrap is not a session", tk, sessions, boot, "run1", "web1", true},
		{"session ok", tk, sessions, sess, "run1", "web1", false},
		{"session other run", tk, sessions, sess, "run2", "web1", true},
		{"session other machine", tk, sessions, sess, "run1", "web2", true},
		{"session other secret", other, sessions, sess, "run1", "web1", true},
		{"session another core same secret", mustTokens(t, secret(1)), sessions, sess, "run1", "web1", false},
		{"session nonce changed", tk, sessions, flip(sess, 10), "run1", "web1", true},
		{"session truncated", tk, sessions, sess[:20], "run1", "web1", true},
		{"session garbage", tk, sessions, strings.Repeat("x", len(sess)), "run1", "web1", true},
		{"session is not a bootstrap", tk, boots, sess, "run1", "web1", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.verify(c.tk, c.cred, c.run, c.m)
			if c.wantErr {
				if !errors.Is(err, auth.ErrInvalid) {
					t.Fatalf("verify = %v, want ErrInvalid", err)
				}
				if c.cred != "" && strings.Contains(err.Error(), c.cred) {
					t.Errorf("error text repeats the credential: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("verify = %v, want nil", err)
			}
		})
	}
}

func TestNewTokensPanicsOnEmptySecret(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewTokens accepted an empty secret")
		}
	}()
	auth.NewTokens(nil)
}

func TestLoadOrCreateSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "folder", "secret")
	s1, err := auth.LoadOrCreateSecret(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(s1) != auth.SecretBytes {
		t.Errorf("secret has %d bytes, want %d", len(s1), auth.SecretBytes)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("secret mode %04o, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("folder mode %04o, want 0700", di.Mode().Perm())
	}
	s2, err := auth.LoadOrCreateSecret(path)
	if err != nil || !bytes.Equal(s1, s2) {
		t.Fatalf("reload = %x, %v; want the same secret", s2, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only the secret (temp file left?)", len(entries))
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s3, err := auth.LoadOrCreateSecret(path)
	if !errors.Is(err, auth.ErrLoosePermissions) || !bytes.Equal(s3, s1) {
		t.Errorf("loose mode: %x, %v; want the secret and ErrLoosePermissions", s3, err)
	}

	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tiny"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := auth.LoadOrCreateSecret(short); err == nil || s != nil {
		t.Errorf("short secret: %x, %v; want an error and no secret", s, err)
	}
	if s, err := auth.LoadOrCreateSecret(dir); err == nil || s != nil {
		t.Errorf("a folder as secret: %x, %v; want an error", s, err)
	}
}

func TestLoadOrCreateSecretRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	const n = 8
	got := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := auth.LoadOrCreateSecret(path)
			if err != nil {
				t.Errorf("LoadOrCreateSecret: %v", err)
			}
			got[i] = s
		}()
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("concurrent creators got different secrets")
		}
	}
}
