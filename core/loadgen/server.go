package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Config tunes a Server; the zero value works.
type Config struct {
	// Sources are the local addresses fake wrappers dial from, taken
	// round-robin: each gives its own ~28,000 ephemeral ports towards the
	// core. Empty: the kernel picks.
	Sources []netip.Addr
	// Log gets the load generator's own events; nil discards them.
	Log hclog.Logger
	// Window bounds the output frames sent and not yet acked, per
	// connection (default 64). A fake wrapper has one goroutine, which
	// cannot read acks while a write blocks; the window keeps the acks in
	// flight well below what the socket buffers hold.
	Window int
	// GiveUp ends a fake wrapper that could reach no core for this long
	// (default 5m; the real wrapper waits an hour).
	GiveUp time.Duration
	// Handshake bounds a dial plus the connect exchange (default 30s);
	// WriteTimeout bounds one frame's write (default 30s).
	Handshake    time.Duration
	WriteTimeout time.Duration
	// MaxDialing bounds the dials in progress at once (0: no bound). A
	// fleet of real wrappers has none, but a burst of tens of thousands
	// can overflow the core's listen backlog.
	MaxDialing int
}

// Server takes the sim plugin's dispatches and plays a v2 wrapper for
// each. It is safe for concurrent use.
type Server struct {
	cfg   Config
	log   hclog.Logger
	stats *stats

	dialer  websocket.Dialer
	source  atomic.Uint64
	pid     atomic.Int64
	dialing chan struct{} // nil: no bound

	tlsMu  sync.Mutex
	tlsFor map[string]*tls.Config // by CA file

	// wrappers counts the fake wrappers running, so Serve can wait for
	// them; stopping refuses dispatches once Serve is ending.
	wrappers sync.WaitGroup
	stopping atomic.Bool
}

// New returns a Server with cfg.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Window <= 0 {
		cfg.Window = 64
	}
	if cfg.GiveUp <= 0 {
		cfg.GiveUp = 5 * time.Minute
	}
	if cfg.Handshake <= 0 {
		cfg.Handshake = 30 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Log, stats: newStats(), tlsFor: map[string]*tls.Config{}}
	s.pid.Store(1000)
	if cfg.MaxDialing > 0 {
		s.dialing = make(chan struct{}, cfg.MaxDialing)
	}
	s.dialer = websocket.Dialer{
		NetDialContext:   s.netDial,
		HandshakeTimeout: cfg.Handshake,
		// What the core sends a wrapper is small (acks, a spec): a small
		// read buffer per connection, and write buffers shared between
		// connections and held only while a frame is written, each room
		// for a default chunk, which then goes as one frame as the real
		// wrapper's does.
		ReadBufferSize:  1 << 10,
		WriteBufferSize: DefaultChunk + wire.BinaryHeaderBytes,
		WriteBufferPool: &sync.Pool{},
	}
	return s
}

// Serve accepts the sim plugin's connections on l until ctx ends, then
// closes l, every dispatch connection and every fake wrapper's
// connection, and returns once all of them have stopped. A fake wrapper
// stopped this way sends nothing more: to the core it is a machine whose
// wrapper went silent.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var conns sync.WaitGroup
	var err error
	for {
		nc, aerr := l.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("accept dispatch connection: %w", aerr)
			}
			break
		}
		s.log.Info("sim plugin connected", "remote_addr", nc.RemoteAddr().String())
		conns.Go(func() { s.serveDispatcher(ctx, nc) })
	}
	s.stopping.Store(true)
	cancel()
	conns.Wait()
	s.wrappers.Wait()
	return err
}

// Stats returns a snapshot of the counters and, when records is true, of
// every (run, machine) record.
func (s *Server) Stats(records bool) Stats { return s.stats.snapshot(records) }

// Forget drops the records of fake wrappers that are over (complete
// acked, or given up), so that a long benchmark's book stays small.
func (s *Server) Forget() { s.stats.forgetDone() }

// dispatch checks one dispatch and starts its fake wrapper.
func (s *Server) dispatch(ctx context.Context, req Request) Reply {
	refuse := func(format string, a ...any) Reply {
		s.stats.refused()
		return Reply{ID: req.ID, Error: fmt.Sprintf(format, a...)}
	}
	if s.stopping.Load() || ctx.Err() != nil {
		return refuse("the load generator is stopping")
	}
	if req.Protocol != wire.ProtocolV2 {
		return refuse("the load generator plays protocol %d wrappers only, not protocol %d", wire.ProtocolV2, req.Protocol)
	}
	for _, k := range []string{wire.EnvToken, wire.EnvJobInstance, wire.EnvMachineID} {
		if req.Env[k] == "" {
			return refuse("the dispatch environment has no %s", k)
		}
	}
	urls := strings.Fields(req.Env[wire.EnvWebSocketURLs])
	if len(urls) == 0 && req.Env[wire.EnvWebSocketURL] != "" {
		urls = []string{req.Env[wire.EnvWebSocketURL]}
	}
	if len(urls) == 0 {
		return refuse("the dispatch environment has no %s", wire.EnvWebSocketURL)
	}
	var tlsCfg *tls.Config
	if ca := req.Env[wire.EnvCAFile]; ca != "" {
		var err error
		if tlsCfg, err = s.tlsConfig(ca); err != nil {
			return refuse("%v", err)
		}
	}
	pid := int(s.pid.Add(1))
	run, machine := req.Env[wire.EnvJobInstance], req.Env[wire.EnvMachineID]
	rec := s.stats.dispatched(req.Env[wire.EnvJobName], run, machine, time.Now())
	w := newFakeWrapper(s, rec, req.Env[wire.EnvJobName], run, machine, req.Env[wire.EnvToken], urls, tlsCfg, pid)
	s.wrappers.Go(func() { w.run(ctx) })
	return Reply{ID: req.ID, OK: true, Detail: fmt.Sprintf("%s (saltpeter-loadgen) pid=%d", wire.DetachedLine, pid)}
}

// tlsConfig trusts the CA file a dispatch names, read once per file.
func (s *Server) tlsConfig(path string) (*tls.Config, error) {
	s.tlsMu.Lock()
	defer s.tlsMu.Unlock()
	if c, ok := s.tlsFor[path]; ok {
		return c, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", wire.EnvCAFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s holds no PEM certificate", wire.EnvCAFile, path)
	}
	c := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	s.tlsFor[path] = c
	return c, nil
}

// netDial dials from the next source address.
func (s *Server) netDial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{}
	if n := len(s.cfg.Sources); n > 0 {
		a := s.cfg.Sources[(s.source.Add(1)-1)%uint64(n)]
		d.LocalAddr = &net.TCPAddr{IP: a.AsSlice()}
	}
	return d.DialContext(ctx, network, addr)
}

// dial opens a WebSocket to url, within the dialing bound.
func (s *Server) dial(ctx context.Context, url string, tlsCfg *tls.Config) (*websocket.Conn, error) {
	if s.dialing != nil {
		select {
		case s.dialing <- struct{}{}:
			defer func() { <-s.dialing }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	d := &s.dialer
	if tlsCfg != nil {
		dd := s.dialer
		dd.TLSClientConfig = tlsCfg
		d = &dd
	}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	ws.SetReadLimit(wire.MaxFrameBytes)
	return ws, nil
}

// errStopped ends a fake wrapper whose Server is stopping.
var errStopped = errors.New("load generator stopping")
