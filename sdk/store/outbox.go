package store

import (
	"errors"
	"fmt"
	"time"
)

// Notification states.
const (
	// NotificationPending is waiting to be delivered: due, leased to a
	// core delivering it, or waiting for its next try.
	NotificationPending = "pending"
	// NotificationDelivered was delivered; it is never claimed again.
	NotificationDelivered = "delivered"
	// NotificationFailed failed its last try; it is never claimed again.
	NotificationFailed = "failed"
)

// DefaultNotificationLimit is how many notifications ClaimNotifications
// and ListNotifications return when the request sets no limit.
const DefaultNotificationLimit = 100

// Notification is one message for one notifier, kept in the store's outbox
// until it is delivered or has failed for good (see the package doc's
// Outbox).
type Notification struct {
	// ID is the caller's, unique per notification: enqueueing an ID
	// already stored leaves the stored one as it is, which is what makes
	// an enqueue safe to retry.
	ID string `json:"id"`
	// Notifier names the notifier plugin block that delivers it.
	Notifier string `json:"notifier"`
	Job      string `json:"job,omitempty"`
	RunID    string `json:"run_id,omitempty"`
	// Kind is the event's kind ("run_finished", "missed_slot", ...).
	Kind string `json:"kind"`
	// Event is the event as JSON; the store keeps the bytes and never
	// reads them. It has no JSON tag so that an API decides how to show
	// it (as JSON, once it has checked that it is).
	Event     []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	// DueAt is when it may next be tried; a retry moves it.
	DueAt time.Time `json:"due_at"`
	// Attempts counts the tries that failed; LastError is the last one's
	// error.
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error,omitempty"`
	State       string    `json:"state"`
	DeliveredAt time.Time `json:"delivered_at"`
}

// ClaimRequest asks ClaimNotifications for work.
type ClaimRequest struct {
	// Owner names the claimer, unique per core process: a lease is held
	// by an owner, and only the owner finishes what it leased.
	Owner string
	// Now is the claimer's clock: what is due at Now is claimed, and a
	// lease that ends at or before Now has expired. Cores sharing a store
	// must agree on the time to well within a Lease.
	Now time.Time
	// Lease is how long the claimed notifications stay the Owner's: a
	// core that dies while delivering lets them go when it ends.
	Lease time.Duration
	// Limit bounds how many are claimed; 0: DefaultNotificationLimit.
	Limit int
}

// NotificationResult is how a delivery attempt ended, for
// FinishNotification.
type NotificationResult struct {
	// Delivered marks the notification delivered at At.
	Delivered bool
	// Final, when not Delivered, marks it failed for good: it is never
	// tried again.
	Final bool
	// RetryAt, when neither Delivered nor Final, is when to try again;
	// it is required then.
	RetryAt time.Time
	// Error is the failed attempt's error.
	Error string
	// At is when the attempt ended. With the owner, it is what tells a
	// retried FinishNotification that its first try took effect.
	At time.Time
}

// NotificationFilter selects notifications for ListNotifications, newest
// (by CreatedAt) first.
type NotificationFilter struct {
	State string // "": any
	Job   string // "": any
	Limit int    // 0: DefaultNotificationLimit
}

// ErrLeaseLost is FinishNotification's answer when the notification is no
// longer leased to the caller: its lease expired and another owner
// claimed it (and may have delivered it already). It wraps ErrNotFound:
// the caller's lease is what is not found.
var ErrLeaseLost error = leaseLost{}

type leaseLost struct{}

func (leaseLost) Error() string { return "notification lease lost" }
func (leaseLost) Unwrap() error { return ErrNotFound }

// NotificationLimit is the limit a claim or a listing uses: n, or
// DefaultNotificationLimit when n is not positive.
func NotificationLimit(n int) int {
	if n <= 0 {
		return DefaultNotificationLimit
	}
	return n
}

// PrepareNotifications checks notifications for enqueueing and returns
// them as a store keeps them, so that every store refuses and defaults
// alike: each needs an ID, a Notifier and a CreatedAt; a zero DueAt is
// CreatedAt (due at once); State, Attempts, LastError and DeliveredAt are
// ignored, since a notification is enqueued pending and untried. Event is
// copied. Nothing is enqueued when one is refused, so the error names it.
func PrepareNotifications(ns []Notification) ([]Notification, error) {
	out := make([]Notification, len(ns))
	for i, n := range ns {
		switch {
		case n.ID == "":
			return nil, fmt.Errorf("notification %d of %d: empty id", i+1, len(ns))
		case n.Notifier == "":
			return nil, fmt.Errorf("notification %s: empty notifier", n.ID)
		case n.CreatedAt.IsZero():
			return nil, fmt.Errorf("notification %s: no created_at", n.ID)
		}
		if n.DueAt.IsZero() {
			n.DueAt = n.CreatedAt
		}
		if n.Event != nil {
			n.Event = append([]byte{}, n.Event...)
		}
		n.State, n.Attempts, n.LastError, n.DeliveredAt = NotificationPending, 0, "", time.Time{}
		out[i] = n
	}
	return out, nil
}

// Check refuses a claim that cannot lease anything sensibly.
func (r ClaimRequest) Check() error {
	switch {
	case r.Owner == "":
		return errors.New("claim notifications: empty owner")
	case r.Now.IsZero():
		return fmt.Errorf("claim notifications for %s: no now", r.Owner)
	case r.Lease <= 0:
		return fmt.Errorf("claim notifications for %s: lease %s, want more than 0", r.Owner, r.Lease)
	}
	return nil
}

// Check refuses a result a store could not apply.
func (r NotificationResult) Check() error {
	if !r.Delivered && !r.Final && r.RetryAt.IsZero() {
		return errors.New("a result that is neither delivered nor final needs a retry time")
	}
	return nil
}

// LeaseRecord is what FinishNotification reads of a stored notification
// to decide what to do; see CheckFinish.
type LeaseRecord struct {
	State string
	// Owner holds the lease or, once the notification is finished, is the
	// owner that finished it last.
	Owner string
	// Leased is true from a claim to the finish of that claim, whether or
	// not the lease has expired meanwhile.
	Leased bool
	// FinishedAt, DueAt and LastError are as the last finish left them.
	FinishedAt time.Time
	DueAt      time.Time
	LastError  string
}

// CheckFinish decides FinishNotification(id, owner, r) for a stored
// notification rec, so that every store decides alike. It answers:
//
//   - apply true: rec is leased to owner, so the result is applied. An
//     expired lease still counts as long as nobody else claimed the
//     notification: the delivery happened, and recording it prevents a
//     second one;
//   - apply false and no error: rec is owner's same finish, already
//     applied (not leased, finished last by owner at r.At, with the
//     state, retry time and error r gives): a retry of a call whose
//     first try took effect, answered as the first try would have been;
//   - ErrLeaseLost otherwise: another owner claimed it since, or it was
//     never owner's.
//
// A retried finish that comes after owner has claimed the notification
// again is applied again; a retry comes at once, long before the RetryAt
// of a retry result, so that does not happen in practice.
func CheckFinish(rec LeaseRecord, id, owner string, r NotificationResult) (apply bool, err error) {
	if owner == "" {
		return false, fmt.Errorf("finish notification %s: empty owner", id)
	}
	if rec.Owner != owner {
		return false, fmt.Errorf("finish notification %s for %s (leased to %q): %w", id, owner, rec.Owner, ErrLeaseLost)
	}
	if rec.State == NotificationPending && rec.Leased {
		return true, nil
	}
	if !rec.Leased && rec.FinishedAt.Equal(r.At) {
		switch {
		case r.Delivered && rec.State == NotificationDelivered,
			!r.Delivered && r.Final && rec.State == NotificationFailed && rec.LastError == r.Error,
			!r.Delivered && !r.Final && rec.State == NotificationPending && rec.LastError == r.Error &&
				rec.DueAt.Equal(r.RetryAt):
			return false, nil
		}
	}
	return false, fmt.Errorf("finish notification %s for %s (%s, not leased): %w", id, owner, rec.State, ErrLeaseLost)
}

// Apply applies r to n, a notification leased to its finisher, as every
// store must: delivered, or one more failed attempt that is final or
// retried at RetryAt. The store then releases the lease.
func (r NotificationResult) Apply(n *Notification) {
	if r.Delivered {
		n.State, n.DeliveredAt = NotificationDelivered, r.At
		return
	}
	n.Attempts++
	n.LastError = r.Error
	if r.Final {
		n.State = NotificationFailed
		return
	}
	n.State, n.DueAt = NotificationPending, r.RetryAt
}
