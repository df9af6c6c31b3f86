package sshtarget

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/saltpeter/saltpeter/sdk/target"
)

// handshakeTimeout bounds a key exchange and login, whatever the
// dispatch's own deadline: a host that accepts TCP and then says nothing
// must not hold a dial slot for long.
const handshakeTimeout = 30 * time.Second

// clientVersion is how the plugin introduces itself, in sshd's logs.
const clientVersion = "SSH-2.0-Saltpeter"

// dial connects to addr and logs in. Every failure but a done ctx wraps
// target.ErrUnreachable: the machine could not be used at all.
func (s *settings) dial(ctx context.Context, machine, addr string) (*ssh.Client, error) {
	client, err := s.dialOnce(ctx, machine, addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: ssh %s@%s: %w", target.ErrUnreachable, s.user, addr, err)
	}
	return client, nil
}

func (s *settings) dialOnce(ctx context.Context, machine, addr string) (*ssh.Client, error) {
	// known_hosts is read for each connection, so that an operator who
	// fixed it needs no restart.
	check, algos, err := hostKeyCheck(s.knownHosts, machine, addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	tcp, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(handshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = tcp.SetDeadline(deadline)
	// A cancelled dispatch must not wait for the handshake's deadline.
	stop := context.AfterFunc(ctx, func() { _ = tcp.SetDeadline(time.Unix(1, 0)) })
	conn, chans, reqs, err := ssh.NewClientConn(tcp, addr, &ssh.ClientConfig{
		User:              s.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(s.signer)},
		HostKeyCallback:   check,
		HostKeyAlgorithms: algos,
		ClientVersion:     clientVersion,
	})
	if !stop() || err != nil {
		_ = tcp.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	_ = tcp.SetDeadline(time.Time{})
	return ssh.NewClient(conn, chans, reqs), nil
}

// probeKey is a key no known_hosts lists: asking for it tells which keys
// are known for a host.
var probeKey = func() ssh.PublicKey {
	k, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		panic(err)
	}
	return k
}()

// hostKeyCheck reads known_hosts and returns the host key check for
// machine at addr, and the host key algorithms to ask the server for:
// those of the keys known_hosts lists for it. Without that, a server that
// prefers another key type than the one on file would look re-keyed. A
// host known_hosts does not list is refused before dialling.
func hostKeyCheck(path, machine, addr string) (ssh.HostKeyCallback, []string, error) {
	db, err := knownhosts.New(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read known_hosts: %w", err)
	}
	var known *knownhosts.KeyError
	err = db(addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey)
	if !errors.As(err, &known) {
		return nil, nil, fmt.Errorf("check %s against known_hosts %s: %v", machine, path, err)
	}
	if len(known.Want) == 0 {
		return nil, nil, fmt.Errorf("host %s is not in known_hosts %s (as %s): add its key there, after checking it (ssh-keyscan shows what it offers)",
			machine, path, knownhosts.Normalize(addr))
	}
	var algos []string
	for _, k := range known.Want {
		for _, a := range hostKeyAlgorithms(k.Key.Type()) {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	check := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := db(hostname, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re):
			return fmt.Errorf("host key for %s is revoked in known_hosts (%s)", machine, re.Revoked.String())
		case errors.As(err, &ke) && len(ke.Want) > 0:
			want := make([]string, len(ke.Want))
			for i, k := range ke.Want {
				want[i] = fmt.Sprintf("%s:%d has %s %s", k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key))
			}
			return fmt.Errorf("host key for %s does not match known_hosts: the host offered %s %s, %s; if the host was re-keyed, replace its line, else someone may be in the middle",
				machine, key.Type(), ssh.FingerprintSHA256(key), strings.Join(want, ", "))
		default:
			return fmt.Errorf("host %s: %w", machine, err)
		}
	}
	return check, algos, nil
}

// hostKeyAlgorithms are the algorithms that verify a host key of type t.
func hostKeyAlgorithms(t string) []string {
	if t == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{t}
}
