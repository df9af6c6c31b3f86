package events

import "testing"

func TestPublishReachesSubscribers(t *testing.T) {
	b := New()
	s, cancel := b.Subscribe(2)
	defer cancel()
	b.Publish(Event{Kind: Output, RunID: "r1"})
	if e := <-s.C; e.Kind != Output || e.RunID != "r1" || e.At.IsZero() {
		t.Fatalf("got %+v", e)
	}
}

func TestSlowSubscriberIsToldItLostEvents(t *testing.T) {
	b := New()
	s, cancel := b.Subscribe(1)
	defer cancel()
	b.Publish(Event{Kind: Output})
	b.Publish(Event{Kind: Output}) // buffer full: dropped, never blocks
	select {
	case <-s.Lost:
	default:
		t.Fatal("Lost not closed after an overflow")
	}
	if len(s.C) != 1 {
		t.Fatalf("buffer holds %d events, want 1", len(s.C))
	}
}

func TestCancelStopsDelivery(t *testing.T) {
	b := New()
	s, cancel := b.Subscribe(1)
	cancel()
	b.Publish(Event{Kind: Output})
	if len(s.C) != 0 {
		t.Fatal("event delivered after cancel")
	}
}
