package wrapper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/wire"
	"github.com/saltpeter/saltpeter/wrapper/proc"
)

// settings are the wrapper's limits and seams; defaultSettings are what
// the program uses, tests shorten them and swap the job for a fake.
type settings struct {
	spoolDir    string
	spoolMemory int           // output held in memory before spilling to disk
	backoff     backoff       // between rounds of dialing every core
	giveUp      time.Duration // failing to reach any core this long after the job ended (or before it started) ends the wrapper
	handshake   time.Duration // connect to its ack
	// writeTimeout bounds one frame's write; with a ping's interval and a
	// heartbeat it is also the silence after which a connection counts
	// as dead (idleFor).
	writeTimeout time.Duration
	drain        time.Duration // reading the pipes after the main process exited
	signalDedup  time.Duration // a signal command repeated within this is a re-send
	environ      func() []string
	start        func(proc.Options) (job, error)
	// prepare, when set, does ahead of start what does not depend on the
	// job (proc.Prepare), while the core is dialled.
	prepare     func() *proc.Prepared
	stopSignals []os.Signal // signals to the wrapper that kill the job
}

func defaultSettings() settings {
	return settings{
		spoolDir:     os.TempDir(),
		spoolMemory:  defaultSpoolMemory,
		backoff:      backoff{min: 250 * time.Millisecond, max: 10 * time.Second},
		giveUp:       time.Hour,
		handshake:    30 * time.Second,
		writeTimeout: 30 * time.Second,
		drain:        500 * time.Millisecond,
		signalDedup:  3 * time.Second,
		environ:      os.Environ,
		start:        startProc,
		prepare:      func() *proc.Prepared { return proc.Prepare(false) },
		stopSignals:  []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP},
	}
}

// runner is one run of the wrapper: one job, reported to whichever core
// answers.
type runner struct {
	cfg   Config
	set   settings
	log   hclog.Logger
	dial  *dialer
	spool *spool
	out   *outbox
	// cmds carries kill and signal commands from the connection's reader
	// to the supervisor.
	cmds chan wire.Frame
	// session authenticates reconnects; only the connection goroutine
	// touches it. Never logged.
	session string
}

// Run runs the job the core hands over and reports it until the core has
// acked its completion. It returns nil then; an error when the core refused
// the wrapper or could not be reached for too long. Cancelling ctx abandons
// the run (the job is terminated with its kill policy).
func Run(ctx context.Context, cfg Config, log hclog.Logger) error {
	r, err := newRunner(cfg, log, defaultSettings())
	if err != nil {
		return err
	}
	return r.run(ctx)
}

func newRunner(cfg Config, log hclog.Logger, set settings) (*runner, error) {
	d, err := newDialer(cfg)
	if err != nil {
		return nil, fmt.Errorf("set up dialing: %w", err)
	}
	log = log.With("job", cfg.JobName, "instance", cfg.JobInstance, "machine", cfg.Machine)
	return &runner{
		cfg:   cfg,
		set:   set,
		log:   log,
		dial:  d,
		spool: newSpool(set.spoolDir, set.spoolMemory, log.Named("spool")),
		out:   newOutbox(),
		cmds:  make(chan wire.Frame, 16),
	}, nil
}

func (r *runner) run(ctx context.Context) error {
	defer r.spool.Close()
	// While the core is dialled and answers, the job's start is made
	// ready as far as it can be without the spec: that work is then off
	// the way from the connect ack to the job's start.
	prepared := make(chan *proc.Prepared, 1)
	if r.set.prepare != nil {
		go func() { prepared <- r.set.prepare() }()
	} else {
		prepared <- nil
	}
	began := time.Now()
	ws, ack, err := r.connect(ctx, false, func() bool { return time.Since(began) > r.set.giveUp })
	if err != nil {
		(<-prepared).Release()
		return fmt.Errorf("connect: %w", err)
	}
	r.adopt(ack, false)

	// From here on a signal to the wrapper must not orphan the job: the
	// supervisor turns it into a kill. Before, the default (exit) is right.
	var stop chan os.Signal
	if len(r.set.stopSignals) > 0 {
		stop = make(chan os.Signal, 1)
		signal.Notify(stop, r.set.stopSignals...)
		// Reset, not Stop: Stop waits for the runtime's signal goroutine
		// to be idle, and with the job's SIGCHLD just delivered that is
		// a Gosched loop waking threads, some 5% of a short run's
		// wrapper CPU. The signals are the runner's, whose process ends
		// with the run; one that comes meanwhile has its default action
		// again, as after Stop.
		defer signal.Reset(r.set.stopSignals...)
	}
	heartbeat := defaultHeartbeat
	sup, err := r.startJob(ack.Spec, stop, <-prepared)
	if err != nil {
		r.log.Error("job not started", "error", err)
		r.out.Finish(err.Error(), wire.Frame{Type: wire.TypeComplete,
			Retcode: wire.Int(wire.ExitError), Seq: wire.Int64(r.spool.Seal())})
	} else {
		heartbeat = sup.spec.heartbeat
	}

	supCtx, abandon := context.WithCancel(ctx)
	defer abandon()
	supDone := make(chan struct{})
	if sup != nil {
		go func() { defer close(supDone); sup.run(supCtx) }()
	} else {
		close(supDone)
	}
	err = r.serve(ctx, ws, heartbeat)
	if err != nil {
		abandon()
	}
	<-supDone
	return err
}

// startJob parses the spec and starts the job, with what was prepared for
// it (nil: nothing), which it releases if the job does not take it.
func (r *runner) startJob(ackSpec *wire.Spec, stop <-chan os.Signal, prepared *proc.Prepared) (*supervisor, error) {
	defer prepared.Release()
	spec, err := parseSpec(ackSpec, r.set.environ())
	if err != nil {
		return nil, fmt.Errorf("invalid spec: %w", err)
	}
	opts := spec.opts
	opts.Prepared = prepared
	j, err := r.set.start(opts)
	if err != nil {
		return nil, fmt.Errorf("start job: %w", err)
	}
	r.log.Info("job started", "pid", j.PID())
	r.out.SetStart(wire.Frame{Type: wire.TypeStart, PID: j.PID(), Version: Version})
	return newSupervisor(r, j, spec, stop), nil
}

// serve keeps a connection to some core until the complete frame is acked,
// reconnecting with resume whenever one drops.
func (r *runner) serve(ctx context.Context, ws *websocket.Conn, heartbeat time.Duration) error {
	for {
		err := r.pump(ctx, ws, heartbeat)
		select {
		case <-r.out.Done():
			r.log.Info("run complete")
			return nil
		default:
		}
		var refused *refusedError
		if errors.As(err, &refused) || ctx.Err() != nil {
			return err
		}
		lost := time.Now()
		r.log.Warn("connection lost; reconnecting", "error", err)
		var ack wire.Frame
		ws, ack, err = r.connect(ctx, true, func() bool {
			// Give up only once the job is over: while it runs the
			// wrapper still enforces its timeout.
			fin := r.out.FinishedAt()
			if fin.IsZero() {
				return false
			}
			return time.Since(later(lost, fin)) > r.set.giveUp
		})
		if err != nil {
			return fmt.Errorf("reconnect: %w", err)
		}
		r.adopt(ack, true)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// connect dials the cores, round after round with back-off, until one
// acks the connect frame. expired says when to stop trying; a refusal
// stops at once.
func (r *runner) connect(ctx context.Context, resume bool, expired func() bool) (*websocket.Conn, wire.Frame, error) {
	for attempt := 0; ; attempt++ {
		ws, url, err := r.dial.dialAny(ctx)
		if err == nil {
			var ack wire.Frame
			ack, err = r.handshake(ctx, ws, resume)
			if err == nil {
				r.log.Info("connected", "url", url, "resume", resume)
				return ws, ack, nil
			}
			ws.Close()
			err = fmt.Errorf("%s: %w", url, err)
			var refused *refusedError
			if errors.As(err, &refused) {
				return nil, wire.Frame{}, err
			}
		}
		if ctx.Err() != nil {
			return nil, wire.Frame{}, ctx.Err()
		}
		if expired() {
			return nil, wire.Frame{}, fmt.Errorf("no core reachable, giving up: %w", err)
		}
		delay := r.set.backoff.delay(attempt)
		r.log.Warn("no core reachable", "error", err, "retry_ms", delay.Milliseconds())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, wire.Frame{}, ctx.Err()
		case <-t.C:
		}
	}
}

// handshake sends connect, with the bootstrap token the first time and
// the session after, and returns the ack.
func (r *runner) handshake(ctx context.Context, ws *websocket.Conn, resume bool) (wire.Frame, error) {
	f := wire.Frame{Type: wire.TypeConnect, Protocol: wire.ProtocolV2, Version: Version}
	if resume {
		f.Resume, f.Session = true, r.session
	} else {
		f.Token = r.cfg.Token
	}
	b, err := wire.Encode(r.stamp(f))
	if err != nil {
		return wire.Frame{}, err
	}
	return exchangeConnect(ctx, ws, b, r.set.handshake)
}

// adopt takes what a connect ack says: the session, and where the core's
// stored output ends.
func (r *runner) adopt(ack wire.Frame, resume bool) {
	if ack.Session != "" {
		r.session = ack.Session
	} else if !resume {
		r.log.Warn("connect ack carries no session; a dropped connection cannot be resumed")
	}
	next := r.spool.Base() // resend everything unacked when the core does not say
	if ack.NextSeq != nil {
		next = *ack.NextSeq
	} else if resume {
		r.log.Warn("resume ack carries no next_seq; sending every unacked chunk again")
	}
	if err := r.spool.Resume(next); err != nil {
		r.log.Error("core's stored output disagrees with the wrapper's", "error", err)
	}
}

// handle takes one frame from the core. An error ends the connection.
func (r *runner) handle(f wire.Frame) error {
	switch f.Type {
	case wire.TypeAck:
		switch f.AckType {
		case wire.TypeOutput:
			if f.Seq != nil {
				r.spool.Ack(*f.Seq)
			}
		case wire.TypeStart:
			r.out.AckStart()
		case wire.TypeComplete:
			r.out.AckComplete()
		}
	case wire.TypeNack:
		if f.NackType == wire.NackOutOfOrder && f.ExpectedSeq != nil && !r.spool.Rewind(*f.ExpectedSeq) {
			r.log.Error("core asks again for output it acked; those bytes are gone", "expected_seq", *f.ExpectedSeq)
		}
	case wire.TypeKill, wire.TypeSignal:
		select {
		case r.cmds <- f:
		default:
			// The supervisor is behind; the core re-sends until answered.
			r.log.Warn("command dropped, supervisor busy", "type", f.Type)
		}
	case wire.TypeError:
		if fatalCode(f.Code) {
			return &refusedError{code: f.Code, text: f.Error}
		}
		r.log.Warn("core reported an error", "code", f.Code, "text", f.Error)
	default:
		r.log.Debug("ignoring frame", "type", f.Type)
	}
	return nil
}

// stamp fills the fields every wrapper frame carries.
func (r *runner) stamp(f wire.Frame) wire.Frame {
	f.JobName, f.JobInstance, f.Machine = r.cfg.JobName, r.cfg.JobInstance, r.cfg.Machine
	f.Timestamp = time.Now().UTC().Format(time.RFC3339Nano)
	return f
}
