package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// Notifiers gives the notifier plugin of a notifier block by its name
// (the plugin host).
type Notifiers interface {
	Notifier(ctx context.Context, name string) (notifier.Notifier, error)
}

// Config configures a Deliverer; zero fields take the defaults noted.
type Config struct {
	Logger    hclog.Logger
	Store     store.Store
	Notifiers Notifiers
	// Owner names this core's leases: unique per core process.
	Owner string
	// Lease is how long a claimed entry stays this core's (default 2m):
	// longer than Timeout, so that an attempt ends before another core
	// may take the entry over.
	Lease time.Duration
	// Timeout bounds one attempt (default 30s).
	Timeout time.Duration
	// Poll is how often the outbox is looked at without being woken
	// (default 5s): for retries coming due, and for entries another core
	// enqueued.
	Poll time.Duration
	// Backoff is the wait after the first failed attempt (default 30s),
	// doubled after each further one up to MaxBackoff (default 1h).
	Backoff, MaxBackoff time.Duration
	// MaxAttempts is how many attempts an entry gets before it is failed
	// for good (default 10: about 4 hours with the default back-off).
	MaxAttempts int
	// Parallel bounds the attempts in flight (default 8).
	Parallel int
	// OnResult, optional, is told how each attempt went: "delivered",
	// "retry" or "failed" (for metrics). It must not block.
	OnResult func(notifier, result string)
	Now      func() time.Time
}

// Policy is one notifier's retry policy: how many attempts, and the wait
// after the first failed one (doubled after each further one, up to
// Config.MaxBackoff).
type Policy struct {
	Attempts int
	Backoff  time.Duration
}

// Deliverer delivers the outbox's entries; see the package doc.
type Deliverer struct {
	cfg      Config
	log      hclog.Logger
	wake     chan struct{}
	failed   atomic.Int64
	policies atomic.Pointer[map[string]Policy]
}

// SetPolicies sets the notifiers' retry policies (a reload calls it
// again); a notifier without one gets Config's MaxAttempts and Backoff.
func (d *Deliverer) SetPolicies(p map[string]Policy) { d.policies.Store(&p) }

func (d *Deliverer) policy(name string) Policy {
	if m := d.policies.Load(); m != nil {
		if p, ok := (*m)[name]; ok && p.Attempts > 0 && p.Backoff > 0 {
			return p
		}
	}
	return Policy{Attempts: d.cfg.MaxAttempts, Backoff: d.cfg.Backoff}
}

// NewDeliverer returns a Deliverer; call Run.
func NewDeliverer(cfg Config) *Deliverer {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Lease, 2*time.Minute)
	def(&cfg.Timeout, 30*time.Second)
	def(&cfg.Poll, 5*time.Second)
	def(&cfg.Backoff, 30*time.Second)
	def(&cfg.MaxBackoff, time.Hour)
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Deliverer{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1)}
}

// Wake makes Run look at the outbox now: call it after enqueueing.
func (d *Deliverer) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Failed counts the entries this core failed for good since it started.
func (d *Deliverer) Failed() int64 { return d.failed.Load() }

// Run delivers until ctx ends. Attempts in flight when it ends are left
// to their leases.
func (d *Deliverer) Run(ctx context.Context) error {
	tick := time.NewTicker(d.cfg.Poll)
	defer tick.Stop()
	for {
		n, err := d.Once(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("look at the notification outbox", "error", err)
		}
		if n > 0 && err == nil {
			continue // there may be more due
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-tick.C:
		}
	}
}

// Once claims what is due and attempts each, and returns how many it
// claimed.
func (d *Deliverer) Once(ctx context.Context) (int, error) {
	ns, err := d.cfg.Store.ClaimNotifications(ctx, store.ClaimRequest{Owner: d.cfg.Owner, Now: d.cfg.Now(),
		Lease: d.cfg.Lease, Limit: d.cfg.Parallel * 4})
	if err != nil {
		return 0, fmt.Errorf("claim notifications: %w", err)
	}
	slots := make(chan struct{}, d.cfg.Parallel)
	var wg sync.WaitGroup
	for _, n := range ns {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			d.attempt(ctx, n)
		})
	}
	wg.Wait()
	return len(ns), nil
}

// attempt delivers one entry and records how it went.
func (d *Deliverer) attempt(ctx context.Context, n store.Notification) {
	log := d.log.With("notification", n.ID, "job", n.Job, "notifier", n.Notifier, "event", n.Kind, "attempt", n.Attempts+1)
	err := d.send(ctx, n)
	if ctx.Err() != nil {
		return // stopping: the lease lets it go
	}
	now := d.cfg.Now().UTC()
	res := store.NotificationResult{At: now}
	pol := d.policy(n.Notifier)
	result := "retry"
	defer func() {
		if d.cfg.OnResult != nil {
			d.cfg.OnResult(n.Notifier, result)
		}
	}()
	switch {
	case err == nil:
		res.Delivered, result = true, "delivered"
	case notifier.IsPermanent(err) || n.Attempts+1 >= pol.Attempts:
		res.Final, res.Error, result = true, err.Error(), "failed"
	default:
		res.Error, res.RetryAt = err.Error(), now.Add(d.backoff(pol.Backoff, n.Attempts))
	}
	// The record outlives a stopping core's context: the delivery
	// happened.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := d.cfg.Store.FinishNotification(fctx, n.ID, d.cfg.Owner, res); ferr != nil {
		if errors.Is(ferr, store.ErrLeaseLost) {
			log.Warn("notification's lease ran out during the attempt: another core has it now", "error", ferr, "attempt_error", err)
			return
		}
		log.Error("record a notification attempt; it will be attempted again when its lease ends", "error", ferr, "attempt_error", err)
		return
	}
	// Logged once recorded, so that what the log says is what the outbox
	// holds, even if the core dies right after.
	switch result {
	case "delivered":
		log.Debug("notification delivered")
	case "failed":
		d.failed.Add(1)
		log.Error("notification failed for good", "error", err, "permanent", notifier.IsPermanent(err))
	default:
		log.Warn("notification not delivered; trying again later", "error", err, "retry_at", res.RetryAt)
	}
}

func (d *Deliverer) send(ctx context.Context, n store.Notification) error {
	var ev notifier.Event
	if err := json.Unmarshal(n.Event, &ev); err != nil {
		return notifier.Permanent(fmt.Errorf("the stored event does not decode: %w", err))
	}
	ev.Attempt = n.Attempts + 1
	actx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	p, err := d.cfg.Notifiers.Notifier(actx, n.Notifier)
	if err != nil {
		return fmt.Errorf("notifier %s: %w", n.Notifier, err)
	}
	if err := p.Notify(actx, ev); err != nil {
		return fmt.Errorf("notifier %s: %w", n.Notifier, err)
	}
	return nil
}

// backoff is the wait after a failed attempt, given how many had failed
// before it.
func (d *Deliverer) backoff(first time.Duration, failedBefore int) time.Duration {
	b := first
	for range failedBefore {
		if b >= d.cfg.MaxBackoff/2 {
			return d.cfg.MaxBackoff
		}
		b *= 2
	}
	return min(b, d.cfg.MaxBackoff)
}
