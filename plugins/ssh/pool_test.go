package sshtarget

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/plugins/ssh/sshtest"
)

// TestJanitor: a pooled connection is closed once idle for idleClose,
// or once it stops answering keepalives, and the pool dials a new one.
// Each case's settings can close the connection for its reason only.
func TestJanitor(t *testing.T) {
	tests := []struct {
		name                 string
		every, timeout, idle time.Duration
		// breakIt makes the connection one the janitor must close.
		breakIt func(t *testing.T, srv *sshtest.Server)
	}{
		{"idle", 20 * time.Millisecond, time.Hour, 100 * time.Millisecond,
			func(*testing.T, *sshtest.Server) {}},
		{"not answering", 50 * time.Millisecond, time.Second, time.Hour,
			func(t *testing.T, srv *sshtest.Server) {
				if n := srv.SignalConnections(t, syscall.SIGSTOP); n != 1 {
					t.Fatalf("stopped %d connections, want the pooled one", n)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := sshtest.Start(t)
			tgt := New(hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: logWriter{t}}))
			t.Cleanup(func() { _ = tgt.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := tgt.Configure(ctx, srv.PluginConfig(nil)); err != nil {
				t.Fatal(err)
			}
			p := tgt.pool
			p.keepaliveEvery, p.keepaliveTimeout, p.idleClose = tc.every, tc.timeout, tc.idle
			machine := srv.Hosts()[0]
			h, err := p.host(mustAddr(t, machine))
			if err != nil {
				t.Fatal(err)
			}
			c, fresh, err := p.get(ctx, h, machine)
			if err != nil || !fresh {
				t.Fatalf("get = %v, fresh %v", err, fresh)
			}
			tc.breakIt(t, srv)
			select {
			case <-c.done:
			case <-ctx.Done():
				t.Fatal("the janitor did not close the connection")
			}
			again, fresh, err := p.get(ctx, h, machine)
			if err != nil || !fresh || again == c {
				t.Fatalf("get after the janitor closed the connection = %v, fresh %v", err, fresh)
			}
			if got := srv.Logins(); got != 2 {
				t.Errorf("%d logins, want a second one after the janitor closed the first", got)
			}
		})
	}
}

func mustAddr(t *testing.T, machine string) string {
	t.Helper()
	a, err := hostAddr(machine, 22)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
