package hub

import (
	"testing"
	"time"
)

func TestSendQueueOrderAndBound(t *testing.T) {
	q := sendQueue{max: 3}
	frames := []*outFrame{{data: []byte("a")}, {data: []byte("b")}, {data: []byte("c")}}
	for i, m := range frames {
		if ok, _ := q.push(m); !ok {
			t.Fatalf("push %d of 3 refused", i)
		}
	}
	ok, room := q.push(&outFrame{data: []byte("d")})
	if ok || room == nil {
		t.Fatalf("push to a full queue: ok=%v room=%v, want refused with a channel", ok, room)
	}
	if n := q.len(); n != 3 {
		t.Fatalf("len = %d, want 3", n)
	}
	for i, want := range frames {
		if got := q.pop(); got != want {
			t.Fatalf("pop %d = %p, want %p (the order pushed)", i, got, want)
		}
	}
	if m := q.pop(); m != nil {
		t.Fatalf("pop of an empty queue = %+v, want nil", m)
	}
	if q.frames != nil {
		t.Errorf("an emptied queue keeps %d slots, want none", cap(q.frames))
	}
}

// A sender that found the queue full is woken by the next pop, and by
// nothing else.
func TestSendQueueRoom(t *testing.T) {
	q := sendQueue{max: 1}
	if ok, _ := q.push(&outFrame{}); !ok {
		t.Fatal("first push refused")
	}
	_, room := q.push(&outFrame{})
	_, again := q.push(&outFrame{})
	if room != again {
		t.Error("two senders waiting for room got different channels")
	}
	select {
	case <-room:
		t.Fatal("room signalled with the queue still full")
	default:
	}
	if q.pop() == nil {
		t.Fatal("pop of a full queue gave nothing")
	}
	select {
	case <-room:
	case <-time.After(10 * time.Second):
		t.Fatal("the pop did not signal room")
	}
	if ok, _ := q.push(&outFrame{}); !ok {
		t.Fatal("push after a pop refused")
	}
	// A channel handed out once a queue is full again is a new one.
	if _, next := q.push(&outFrame{}); next == room {
		t.Error("a full queue handed out the channel already closed")
	}
}
