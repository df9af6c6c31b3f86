package sshtest_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/saltpeter/saltpeter/plugins/ssh/sshtest"
)

// clientConfig logs in as srv's user with its key, checking host keys
// against knownHosts.
func clientConfig(t *testing.T, srv *sshtest.Server, knownHosts string) *ssh.ClientConfig {
	t.Helper()
	pem, err := os.ReadFile(srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	check, err := knownhosts.New(knownHosts)
	if err != nil {
		t.Fatal(err)
	}
	return &ssh.ClientConfig{User: srv.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: check,
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519}}
}

// TestEveryHostReachesTheServer: each name Hosts gives logs in with the
// key, passes the known_hosts check and runs a command with the server's
// HOME; the log counts the logins.
func TestEveryHostReachesTheServer(t *testing.T) {
	srv := sshtest.Start(t)
	hosts := srv.Hosts()
	if len(hosts) < 2 {
		t.Fatalf("Hosts() = %q, want at least 127.0.0.1 and localhost", hosts)
	}
	cfg := clientConfig(t, srv, srv.KnownHosts)
	for _, h := range hosts {
		c, err := ssh.Dial("tcp", h, cfg)
		if err != nil {
			t.Fatalf("dial %s: %v", h, err)
		}
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := sess.Output("echo hello from $USER in $HOME")
		c.Close()
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		if want := "hello from " + srv.User + " in " + srv.Home + "\n"; string(out) != want {
			t.Errorf("%s: output %q, want %q", h, out, want)
		}
	}
	if got := srv.Logins(); got != len(hosts) {
		t.Errorf("Logins() = %d after %d connections", got, len(hosts))
	}
}

// TestWrongKnownHostsIsRefused: a known_hosts file with another key for
// the server's names makes the client refuse it.
func TestWrongKnownHostsIsRefused(t *testing.T) {
	srv := sshtest.Start(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(t, srv, srv.WriteKnownHosts(t, other))
	c, err := ssh.Dial("tcp", srv.Addr(), cfg)
	if err == nil {
		c.Close()
		t.Fatal("dial succeeded with the wrong host key in known_hosts")
	}
	if !strings.Contains(err.Error(), "key mismatch") {
		t.Errorf("dial error %q is not a host key mismatch", err)
	}
}

func TestRequired(t *testing.T) {
	tests := []struct {
		env  string
		want bool
	}{
		{"", false},
		{"all", true},
		{"postgres", false},
		{"postgres, sshd", true},
		{"sshd2", false},
	}
	for _, tt := range tests {
		t.Setenv("SALTPETER_REQUIRE", tt.env)
		if got := sshtest.Required(); got != tt.want {
			t.Errorf("SALTPETER_REQUIRE=%q: Required() = %v, want %v", tt.env, got, tt.want)
		}
	}
}
