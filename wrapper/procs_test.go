package wrapper

import (
	"bytes"
	"io"
	"runtime"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// reads gives its chunks one Read each, then EOF.
type reads [][]byte

func (r *reads) Read(b []byte) (int, error) {
	if len(*r) == 0 {
		return 0, io.EOF
	}
	n := copy(b, (*r)[0])
	*r = (*r)[1:]
	return n, nil
}

func TestChattyReads(t *testing.T) {
	tests := []struct {
		name  string
		reads []int
		want  int
	}{
		{"quiet job", []int{10, 4096, chattyRead - 1}, 0},
		{"a full pipe", []int{10, chattyRead, 3}, 1},
		{"full twice", []int{chattyRead, 2 * chattyRead}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in reads
			var want bytes.Buffer
			for i, n := range tt.reads {
				b := bytes.Repeat([]byte{byte('a' + i)}, n)
				in = append(in, b)
				want.Write(b)
			}
			s := newSpool(t.TempDir(), 8<<20, hclog.NewNullLogger())
			calls := 0
			p := &pipes{done: make(chan struct{}), chatty: func() { calls++ }}
			p.copy(wire.BinaryStdout, &in, s, hclog.NewNullLogger())
			if calls != tt.want {
				t.Errorf("chatty called %d times, want %d", calls, tt.want)
			}
			var got []byte
			for _, c := range s.chunks {
				got = append(got, c.data...)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("spooled %d bytes, want the %d read", len(got), want.Len())
			}
		})
	}
}

// Narrow takes the wrapper to one P unless GOMAXPROCS says otherwise, and
// the first widen gives back what it took.
func TestNarrowWiden(t *testing.T) {
	was := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(was); wideProcs.Store(0) })

	t.Run("chosen by the environment", func(t *testing.T) {
		t.Setenv("GOMAXPROCS", "3")
		runtime.GOMAXPROCS(3)
		Narrow()
		if got := runtime.GOMAXPROCS(0); got != 3 {
			t.Errorf("GOMAXPROCS = %d after Narrow, want the environment's 3", got)
		}
		widen()
		if got := runtime.GOMAXPROCS(0); got != 3 {
			t.Errorf("GOMAXPROCS = %d after widen, want 3", got)
		}
	})
	t.Run("narrowed, then widened once", func(t *testing.T) {
		t.Setenv("GOMAXPROCS", "")
		runtime.GOMAXPROCS(4)
		Narrow()
		if got := runtime.GOMAXPROCS(0); got != 1 {
			t.Fatalf("GOMAXPROCS = %d after Narrow, want 1", got)
		}
		widen()
		if got := runtime.GOMAXPROCS(0); got != 4 {
			t.Errorf("GOMAXPROCS = %d after widen, want the 4 it was", got)
		}
		runtime.GOMAXPROCS(2)
		widen()
		if got := runtime.GOMAXPROCS(0); got != 2 {
			t.Errorf("a second widen set GOMAXPROCS to %d, want it left at 2", got)
		}
	})
}
