package notifier

import (
	"context"
	"errors"
)

// Notifier delivers notifications to one receiver: a URL, a chat, a
// mailbox, a program. The core runs one plugin process per notifier block
// and configures it with that block's config. Implementations are safe
// for concurrent use: the core delivers several events at once, and may
// call Configure (at a reload) while a Notify is in flight.
type Notifier interface {
	// Configure hands the plugin its notifier block's config (a JSON
	// object, "{}" when there is none). It is called once before any
	// Notify, again after the plugin is restarted, and when a reload
	// changes the block. It refuses unknown keys and wrong types with an
	// error naming them, and reaches no receiver: a receiver that is
	// down must not keep the core from starting.
	Configure(ctx context.Context, config []byte) error
	// Notify delivers ev and returns nil only once the receiver has
	// accepted it. An error makes the core try again later with the same
	// ev (but a higher Attempt), unless it is Permanent. The same event
	// may be delivered twice (a core that crashed after a delivery, a
	// plugin that died after one): receivers tell by ev.ID.
	Notify(ctx context.Context, ev Event) error
}

// Permanent marks err as a failure retrying cannot cure: a receiver that
// refuses the event for good (an HTTP 4xx other than 408 and 429, an
// address the mail server refuses, a wrong password), a template that
// does not render. The core then gives the notification up and records
// why instead of retrying it. Any error not marked is retried. It crosses
// the plugin boundary: IsPermanent finds it in what the core's client
// returns. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent. A context error never is: a delivery cut short by the core's
// own cancellation or deadline is tried again.
func IsPermanent(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var p *permanentError
	return errors.As(err, &p)
}

// permanentError keeps the marked error's text, unchanged.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
