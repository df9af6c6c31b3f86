// Package sshtest gives tests a real OpenSSH server on loopback, for any
// package whose tests need one: the ssh target's own, and the end-to-end
// tests that run a core with it.
//
// Each test calls Start, which starts a fresh sshd for that test alone
// (so what its log shows is the test's own doing) and stops it at the
// end:
//
//	func TestSomething(t *testing.T) {
//		srv := sshtest.Start(t)
//		cfg := srv.PluginConfig(nil) // the ssh target's config block, as JSON
//		hosts := srv.Hosts()         // "127.0.0.1:PORT", "localhost:PORT", …
//		…
//	}
//
// The server is /usr/sbin/sshd (else sshd on PATH), run as the user
// running the tests, in a temporary directory holding a fresh ed25519
// host key, a client key it authorises for that user, and a known_hosts
// file naming the host key for every loopback name it listens on. It
// accepts public keys only, on 127.0.0.1 and, when the machine has IPv6
// loopback, ::1, on a free port; StrictModes is off so that the temporary
// directory's ownership does not matter, and PAM is not used.
//
// Without sshd, Start skips the test with a hint on how to install it, or
// fails it when SALTPETER_REQUIRE is "all" or a comma list naming "sshd".
// An sshd that is there but will not start fails the test, with its log.
package sshtest
