package killq

import (
	"fmt"
	"testing"
	"time"
)

func TestQueueKeepsOrderAndNeverBlocksPush(t *testing.T) {
	q := New()
	for i, id := range []string{"a", "b", "c"} {
		q.Push(Request{Kind: Kill, RunID: id})
		if q.Len() != i+1 {
			t.Fatalf("Len = %d after %d pushes", q.Len(), i+1)
		}
	}
	done := make(chan struct{})
	defer close(done)
	go q.Run(done)
	for _, want := range []string{"a", "b", "c"} {
		r := <-q.C()
		if r.RunID != want || r.At.IsZero() {
			t.Fatalf("got %+v, want run %s with a time", r, want)
		}
	}
}

// TestPushReachesCWithoutRun: a request pushed while nothing waits is in
// C at once, without Run's goroutine between the pusher and the hub.
func TestPushReachesCWithoutRun(t *testing.T) {
	q := New()
	q.Push(Request{Kind: Kill, RunID: "now"})
	select {
	case r := <-q.C():
		if r.RunID != "now" {
			t.Fatalf("got %+v", r)
		}
	default:
		t.Fatal("the request is not in C: it waits for Run")
	}
}

// TestQueueKeepsOrderPastTheBuffer: requests beyond what C holds wait for
// Run, and those pushed while some wait, even once C has room again, come
// after them: the hub gets every request once, in push order.
func TestQueueKeepsOrderPastTheBuffer(t *testing.T) {
	q := New()
	const n = 3*bufferSize + 5
	for i := range n {
		q.Push(Request{Kind: Signal, RunID: fmt.Sprint(i)})
		if i == bufferSize+2 {
			// C has room again, behind requests still waiting.
			select {
			case <-q.C():
			default:
				t.Fatal("C holds nothing after more pushes than it holds")
			}
			q.Push(Request{Kind: Signal, RunID: "late"})
		}
	}
	if q.Len() != n {
		t.Fatalf("Len = %d, want %d", q.Len(), n)
	}
	done := make(chan struct{})
	defer close(done)
	go q.Run(done)
	var got []string
	timeout := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case r := <-q.C():
			got = append(got, r.RunID)
		case <-timeout:
			t.Fatalf("%d requests of %d after 30s", len(got), n)
		}
	}
	var want []string
	for i := 1; i < n; i++ {
		want = append(want, fmt.Sprint(i))
		if i == bufferSize+2 {
			want = append(want, "late")
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("order:\n got %v\nwant %v", got, want)
	}
}
