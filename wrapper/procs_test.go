package wrapper

import (
	"bytes"
	"io"
	"os"
	"runtime"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/wire"
	"github.com/saltpeter/saltpeter/wrapper/proc"
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
		{"quiet job", []int{10, 4096, proc.FullRead - 1}, 0},
		{"a full pipe", []int{10, proc.FullRead, 3}, 1},
		{"full twice", []int{proc.FullRead, 2 * proc.FullRead}, 2},
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

// Narrow puts the wrapper on one P unless the operator chose GOMAXPROCS,
// and takes its target's word for it; the first widen gives the runtime's
// default back.
func TestNarrowWiden(t *testing.T) {
	was := runtime.GOMAXPROCS(0)
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(was); narrowed.Store(false) })
	tests := []struct {
		name               string
		gomaxprocs, marker string // "" for unset
		start              int    // GOMAXPROCS as the runtime started
		narrow, wide       int    // GOMAXPROCS after Narrow, after widen
		keepEnv            bool   // GOMAXPROCS is still in the environment
	}{
		{name: "the operator's", gomaxprocs: "3", start: 3, narrow: 3, wide: 3, keepEnv: true},
		{name: "the operator's, with a stray marker", gomaxprocs: "3", marker: "1", start: 3, narrow: 3, wide: 3, keepEnv: true},
		{name: "narrowed by itself", start: 4, narrow: 1, wide: def},
		{name: "narrowed by its target", gomaxprocs: "1", marker: "1", start: 1, narrow: 1, wide: def},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tt.gomaxprocs)
			t.Setenv(wire.EnvNarrowedByTarget, tt.marker)
			runtime.GOMAXPROCS(tt.start)
			Narrow()
			if got := runtime.GOMAXPROCS(0); got != tt.narrow {
				t.Errorf("GOMAXPROCS = %d after Narrow, want %d", got, tt.narrow)
			}
			if v, ok := os.LookupEnv(wire.EnvNarrowedByTarget); ok {
				t.Errorf("%s=%q left for the job", wire.EnvNarrowedByTarget, v)
			}
			if v, ok := os.LookupEnv("GOMAXPROCS"); tt.gomaxprocs != "" && ok != tt.keepEnv {
				t.Errorf("GOMAXPROCS=%q in the environment: %v, want %v", v, ok, tt.keepEnv)
			}
			widen()
			if got := runtime.GOMAXPROCS(0); got != tt.wide {
				t.Errorf("GOMAXPROCS = %d after widen, want %d", got, tt.wide)
			}
			runtime.GOMAXPROCS(2)
			widen()
			if got := runtime.GOMAXPROCS(0); got != 2 {
				t.Errorf("a second widen set GOMAXPROCS to %d, want it left at 2", got)
			}
		})
	}
}
