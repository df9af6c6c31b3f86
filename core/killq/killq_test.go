package killq

import "testing"

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
