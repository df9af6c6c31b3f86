package wrapper

import (
	"bytes"
	"fmt"
	"runtime"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// spoolOp is one step of a spool scenario.
type spoolOp struct {
	append string // append this on stdout (or system when sys)
	sys    bool
	send   int   // take this many chunks with Next
	ack    int64 // Ack this seq (when ackSet)
	ackSet bool
	rewind int64 // Rewind to this seq (when rewindSet)
	rewSet bool
	resume int64 // Resume from this next_seq (when resumeSet)
	resSet bool
}

func TestSpool(t *testing.T) {
	for _, tc := range []struct {
		name     string
		memLimit int
		ops      []spoolOp
		wantSent []string // every chunk Next returned, "seq:stream:data"
		wantLeft int      // unacked chunks at the end
		wantFile bool     // something still spilled at the end
	}{
		{
			name: "in memory, acked ranges dropped", memLimit: 1 << 20,
			ops: []spoolOp{
				{append: "a"}, {send: 1}, {append: "b"}, {append: "c", sys: true}, {send: 5},
				{ack: 1, ackSet: true},
			},
			wantSent: []string{"0:stdout:a", "1:stdout:b", "2:system:c"},
			wantLeft: 1,
		},
		{
			name: "unsent writes merge, sent ones never change", memLimit: 1 << 20,
			ops: []spoolOp{
				{append: "ab"}, {append: "cd"}, {send: 1}, {append: "ef"}, {append: "gh"},
				{rewind: 0, rewSet: true}, {send: 5}, {ack: 1, ackSet: true},
			},
			wantSent: []string{"0:stdout:abcd", "0:stdout:abcd", "1:stdout:efgh"},
			wantLeft: 0,
		},
		{
			name: "spilled to disk past the memory limit", memLimit: 4,
			ops: []spoolOp{
				{append: "1234"}, {send: 1}, {append: "5678"}, {send: 1}, {append: "9"}, {send: 1},
			},
			wantSent: []string{"0:stdout:1234", "1:stdout:5678", "2:stdout:9"},
			wantLeft: 3, wantFile: true,
		},
		{
			name: "unsent spilled writes merge, sent ones never change", memLimit: 2,
			ops: []spoolOp{
				{append: "aa"}, {append: "bb"}, {append: "cc"}, {send: 1}, {send: 1},
				{append: "dd"}, {append: "ee"}, {rewind: 1, rewSet: true}, {send: 5},
			},
			wantSent: []string{"0:stdout:aa", "1:stdout:bbcc", "1:stdout:bbcc", "2:stdout:ddee"},
			wantLeft: 3, wantFile: true,
		},
		{
			name: "spilled writes merge on one stream only", memLimit: 1,
			ops: []spoolOp{
				{append: "aa"}, {append: "bb"}, {append: "s", sys: true}, {append: "cc"}, {send: 5},
			},
			wantSent: []string{"0:stdout:aabb", "1:system:s", "2:stdout:cc"},
			wantLeft: 3, wantFile: true,
		},
		{
			name: "spilled chunks acked: file emptied", memLimit: 2,
			ops: []spoolOp{
				{append: "aa"}, {send: 1}, {append: "bb"}, {send: 1}, {append: "cc"}, {send: 1},
				{ack: 2, ackSet: true},
			},
			wantSent: []string{"0:stdout:aa", "1:stdout:bb", "2:stdout:cc"},
			wantLeft: 0,
		},
		{
			name: "resume drops below next_seq and resends from it", memLimit: 3,
			ops: []spoolOp{
				{append: "aaa"}, {send: 1}, {append: "bbb"}, {send: 1}, {append: "ccc"}, {send: 1},
				{resume: 1, resSet: true}, {send: 5},
			},
			wantSent: []string{"0:stdout:aaa", "1:stdout:bbb", "2:stdout:ccc", "1:stdout:bbb", "2:stdout:ccc"},
			wantLeft: 2, wantFile: true,
		},
		{
			name: "nack rewinds, never before what is acked", memLimit: 1 << 20,
			ops: []spoolOp{
				{append: "a"}, {send: 1}, {append: "b"}, {send: 1}, {append: "c"}, {send: 1},
				{ack: 0, ackSet: true}, {rewind: 0, rewSet: true}, {send: 5},
				{rewind: 1, rewSet: true}, {send: 5},
			},
			wantSent: []string{"0:stdout:a", "1:stdout:b", "2:stdout:c", "1:stdout:b", "2:stdout:c"},
			wantLeft: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpool(t.TempDir(), tc.memLimit, hclog.NewNullLogger())
			t.Cleanup(func() { s.Close() })
			var sent []string
			for _, op := range tc.ops {
				switch {
				case op.append != "":
					stream := wire.BinaryStdout
					if op.sys {
						stream = wire.BinarySystem
					}
					if !s.Append(stream, []byte(op.append)) {
						t.Fatal("append refused")
					}
				case op.send > 0:
					for range op.send {
						c, ok, err := s.Next()
						if err != nil {
							t.Fatal(err)
						}
						if !ok {
							break
						}
						name, _ := wire.StreamName(c.stream)
						sent = append(sent, fmt.Sprintf("%d:%s:%s", c.seq, name, c.data))
					}
				case op.ackSet:
					s.Ack(op.ack)
				case op.rewSet:
					s.Rewind(op.rewind)
				case op.resSet:
					if err := s.Resume(op.resume); err != nil {
						t.Fatal(err)
					}
				}
			}
			if fmt.Sprint(sent) != fmt.Sprint(tc.wantSent) {
				t.Errorf("sent %q\nwant %q", sent, tc.wantSent)
			}
			st := s.stats()
			if st.chunks != tc.wantLeft {
				t.Errorf("%d chunks left, want %d", st.chunks, tc.wantLeft)
			}
			if (st.fileLive > 0) != tc.wantFile || (st.fileLive == 0 && st.fileEnd != 0) {
				t.Errorf("spilled %d chunks, file end %d; want spilled %v", st.fileLive, st.fileEnd, tc.wantFile)
			}
		})
	}
}

// TestSpoolLarge pushes several MiB through a small memory limit with
// acks lagging, and checks every byte comes back once, in order, the
// spilled chunks read into one buffer.
func TestSpoolLarge(t *testing.T) {
	const limit = 64 << 10
	s := newSpool(t.TempDir(), limit, hclog.NewNullLogger())
	t.Cleanup(func() { s.Close() })
	data := randomBytes(6<<20, 7)
	var got bytes.Buffer
	next := int64(0)
	var buf []byte // every spilled chunk is read into it, as the writer does
	for off := 0; off < len(data); off += chunkMax {
		s.Append(wire.BinaryStdout, data[off:min(off+chunkMax, len(data))])
		if off%(8*chunkMax) == 0 { // the network is slow: drain now and then
			for {
				c, ok, err := s.NextInto(&buf)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				if c.seq != next {
					t.Fatalf("seq %d, want %d", c.seq, next)
				}
				next++
				got.Write(c.data)
				s.Ack(c.seq - 2) // acks lag behind
			}
		}
		if st := s.stats(); st.memBytes > limit {
			t.Fatalf("%d bytes in memory, limit %d", st.memBytes, limit)
		}
	}
	for {
		c, ok, err := s.NextInto(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got.Write(c.data)
		s.Ack(c.seq)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Errorf("got %d bytes back, want %d", got.Len(), len(data))
	}
	if st := s.stats(); st.chunks != 0 || st.memBytes != 0 || st.fileEnd != 0 {
		t.Errorf("after the last ack: %+v", st)
	}
}

func TestSpoolSeal(t *testing.T) {
	s := newSpool(t.TempDir(), 1<<20, hclog.NewNullLogger())
	if last := s.Seal(); last != -1 {
		t.Errorf("empty spool sealed at %d, want -1", last)
	}
	if s.Append(wire.BinaryStdout, []byte("late")) {
		t.Error("sealed spool took a chunk")
	}
	s = newSpool(t.TempDir(), 1<<20, hclog.NewNullLogger())
	s.Append(wire.BinaryStdout, []byte("x"))
	s.Append(wire.BinaryStderr, []byte("y"))
	if last := s.Seal(); last != 1 {
		t.Errorf("sealed at %d, want 1", last)
	}
}

// TestSpoolFreesAckedSpill: while the core acks, the spill file gives
// back the space of acked chunks, so that it holds about what is unacked,
// and the unacked chunks still read back whole.
func TestSpoolFreesAckedSpill(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("hole punching is Linux's")
	}
	const n = 64
	s := newSpool(t.TempDir(), chunkMax, hclog.NewNullLogger())
	t.Cleanup(func() { _ = s.Close() })
	data := func(seq int64) []byte { return bytes.Repeat([]byte{byte('a' + seq%26)}, chunkMax) }
	for seq := range int64(n) {
		s.Append(wire.BinaryStdout, data(seq))
		if _, ok, err := s.Next(); !ok || err != nil {
			t.Fatalf("Next after chunk %d: %v, %v", seq, ok, err)
		}
	}
	const acked = n - 8
	s.Ack(acked - 1)
	st := s.stats()
	if st.fileLive == 0 || st.fileFreed == 0 {
		t.Fatalf("after acking %d chunks: %+v, want some spilled and some given back", acked, st)
	}
	var fs syscall.Stat_t
	if err := syscall.Fstat(int(s.file.Fd()), &fs); err != nil {
		t.Fatal(err)
	}
	unacked := int64(n-acked) * chunkMax
	if used := fs.Blocks * 512; used > unacked+spillFreeStep+chunkMax {
		t.Errorf("spill file takes %d bytes of disk with %d unacked", used, unacked)
	}
	if err := s.Resume(acked); err != nil { // a new connection: everything unacked again
		t.Fatal(err)
	}
	for seq := int64(acked); seq < n; seq++ {
		c, ok, err := s.Next()
		if err != nil || !ok || c.seq != seq || !bytes.Equal(c.data, data(seq)) {
			t.Fatalf("chunk %d after freeing: seq %d, ok %v, %v, %d bytes", seq, c.seq, ok, err, len(c.data))
		}
	}
}
