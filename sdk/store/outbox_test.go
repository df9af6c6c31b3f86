package store

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestCheckFinish(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC)
	retryAt := at.Add(time.Minute)
	delivered := NotificationResult{Delivered: true, At: at}
	retry := NotificationResult{RetryAt: retryAt, Error: "503", At: at}
	final := NotificationResult{Final: true, Error: "410", At: at}
	leasedToA := LeaseRecord{State: NotificationPending, Owner: "A", Leased: true}
	// What each result leaves behind when A applied it.
	afterDelivered := LeaseRecord{State: NotificationDelivered, Owner: "A", FinishedAt: at}
	afterRetry := LeaseRecord{State: NotificationPending, Owner: "A", FinishedAt: at, DueAt: retryAt, LastError: "503"}
	afterFinal := LeaseRecord{State: NotificationFailed, Owner: "A", FinishedAt: at, LastError: "410"}
	cases := []struct {
		name      string
		rec       LeaseRecord
		owner     string
		r         NotificationResult
		wantApply bool
		wantErr   error // nil: none; errAny: some error that is no sentinel
	}{
		{"leased to the owner", leasedToA, "A", delivered, true, nil},
		{"leased to the owner, a retry", leasedToA, "A", retry, true, nil},
		{"leased to another", leasedToA, "B", delivered, false, ErrLeaseLost},
		{"never claimed", LeaseRecord{State: NotificationPending}, "A", delivered, false, ErrLeaseLost},
		{"empty owner", LeaseRecord{State: NotificationPending}, "", delivered, false, errAny},
		{"delivered, the same finish again", afterDelivered, "A", delivered, false, nil},
		{"retried, the same finish again", afterRetry, "A", retry, false, nil},
		{"failed, the same finish again", afterFinal, "A", final, false, nil},
		{"delivered, then another time", afterDelivered, "A", NotificationResult{Delivered: true, At: at.Add(1)}, false, ErrLeaseLost},
		{"delivered, then a retry", afterDelivered, "A", retry, false, ErrLeaseLost},
		{"retried, then another retry time", afterRetry, "A", NotificationResult{RetryAt: retryAt.Add(1), Error: "503", At: at}, false, ErrLeaseLost},
		{"retried, then another error", afterRetry, "A", NotificationResult{RetryAt: retryAt, Error: "500", At: at}, false, ErrLeaseLost},
		{"retried, then final", afterRetry, "A", NotificationResult{Final: true, Error: "503", At: at}, false, ErrLeaseLost},
		{"failed, then delivered", afterFinal, "A", delivered, false, ErrLeaseLost},
		{"failed, then another error", afterFinal, "A", NotificationResult{Final: true, Error: "x", At: at}, false, ErrLeaseLost},
		{"delivered by another", afterDelivered, "B", delivered, false, ErrLeaseLost},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			apply, err := CheckFinish(c.rec, "n1", c.owner, c.r)
			if apply != c.wantApply {
				t.Errorf("apply = %v, want %v", apply, c.wantApply)
			}
			switch {
			case c.wantErr == nil && err != nil:
				t.Errorf("error %v, want none", err)
			case c.wantErr == errAny && (err == nil || errors.Is(err, ErrNotFound)):
				t.Errorf("error %v, want a plain one", err)
			case c.wantErr == ErrLeaseLost && (!errors.Is(err, ErrLeaseLost) || !errors.Is(err, ErrNotFound)):
				t.Errorf("error %v, want ErrLeaseLost, which is ErrNotFound", err)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestResultApply(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	start := Notification{State: NotificationPending, DueAt: at, Attempts: 2, LastError: "old"}
	cases := []struct {
		name string
		r    NotificationResult
		want Notification
	}{
		{"delivered", NotificationResult{Delivered: true, Final: true, Error: "ignored", At: at.Add(time.Second)},
			Notification{State: NotificationDelivered, DueAt: at, Attempts: 2, LastError: "old", DeliveredAt: at.Add(time.Second)}},
		{"retry", NotificationResult{RetryAt: at.Add(time.Hour), Error: "503", At: at},
			Notification{State: NotificationPending, DueAt: at.Add(time.Hour), Attempts: 3, LastError: "503"}},
		{"final", NotificationResult{Final: true, RetryAt: at.Add(time.Hour), Error: "410", At: at},
			Notification{State: NotificationFailed, DueAt: at, Attempts: 3, LastError: "410"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := start
			c.r.Apply(&n)
			if !reflect.DeepEqual(n, c.want) {
				t.Errorf("after Apply: %+v\nwant %+v", n, c.want)
			}
		})
	}
}

func TestPrepareNotifications(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	event := []byte(`{}`)
	in := []Notification{
		{ID: "a", Notifier: "hook", CreatedAt: at, Event: event, State: NotificationFailed, Attempts: 4,
			LastError: "x", DeliveredAt: at},
		{ID: "b", Notifier: "hook", CreatedAt: at, DueAt: at.Add(time.Hour)},
	}
	out, err := PrepareNotifications(in)
	if err != nil {
		t.Fatal(err)
	}
	if a := out[0]; a.State != NotificationPending || a.Attempts != 0 || a.LastError != "" ||
		!a.DeliveredAt.IsZero() || !a.DueAt.Equal(at) {
		t.Errorf("a = %+v; want pending, untried, due when created", a)
	}
	if b := out[1]; !b.DueAt.Equal(at.Add(time.Hour)) || b.Event != nil {
		t.Errorf("b = %+v; want its own due time and no event", b)
	}
	event[0] = 'X'
	if string(out[0].Event) != `{}` {
		t.Errorf("the prepared event aliases the caller's: %q", out[0].Event)
	}
	for _, bad := range []Notification{
		{Notifier: "hook", CreatedAt: at},
		{ID: "x", CreatedAt: at},
		{ID: "x", Notifier: "hook"},
	} {
		if _, err := PrepareNotifications([]Notification{in[0], bad}); err == nil {
			t.Errorf("PrepareNotifications accepted %+v", bad)
		}
	}
}

func TestClaimRequestCheck(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		r    ClaimRequest
		ok   bool
	}{
		{"fine", ClaimRequest{Owner: "A", Now: now, Lease: time.Second}, true},
		{"no owner", ClaimRequest{Now: now, Lease: time.Second}, false},
		{"no now", ClaimRequest{Owner: "A", Lease: time.Second}, false},
		{"no lease", ClaimRequest{Owner: "A", Now: now}, false},
		{"negative lease", ClaimRequest{Owner: "A", Now: now, Lease: -time.Second}, false},
	}
	for _, c := range cases {
		if err := c.r.Check(); (err == nil) != c.ok {
			t.Errorf("%s: Check = %v, want ok %v", c.name, err, c.ok)
		}
	}
	if NotificationLimit(0) != DefaultNotificationLimit || NotificationLimit(-1) != DefaultNotificationLimit || NotificationLimit(3) != 3 {
		t.Errorf("NotificationLimit: 0 -> %d, -1 -> %d, 3 -> %d", NotificationLimit(0), NotificationLimit(-1), NotificationLimit(3))
	}
}
