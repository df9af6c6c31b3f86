package wrapper

import (
	"bytes"
	"fmt"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Spool sizes. The memory limit bounds what a run holds in RAM while the
// core is away; past it chunks go to an unlinked temp file, so a chatty job
// never blocks on a full pipe.
const (
	defaultSpoolMemory = 8 << 20
	// chunkMax is the most a pipe read takes, and the most an unsent chunk
	// grows to when reads are merged. A chunk is a frame, a store item and
	// an ack, whatever its size, so the output of a job that outruns the
	// core goes in chunks of several pipe reads (wire.MaxOutputChunk).
	chunkMax = wire.MaxOutputChunk
)

// chunk is one sequenced piece of output. Chunk i of spool.chunks has seq
// spool.base()+i: seqs are contiguous.
type chunk struct {
	stream byte   // wire.BinaryStdout, BinaryStderr or BinarySystem
	data   []byte // nil when spilled
	off    int64  // offset in the spill file when spilled
	n      int    // length when spilled
}

// sendable is a chunk handed to the writer.
type sendable struct {
	seq    int64
	stream byte
	data   []byte
}

// spool is the one sequencer of a run's output and its send buffer: every
// chunk of stdout, stderr and the wrapper's notes gets the next seq here and
// stays until the core acks it. A cursor says what the current connection
// has sent; a resume or a nack moves it back.
type spool struct {
	mu       sync.Mutex
	wake     chan struct{}
	dir      string
	memLimit int
	log      hclog.Logger

	chunks   []chunk // unacked chunks, oldest first
	next     int64   // the seq the next chunk gets
	cursor   int64   // the next seq to send on this connection
	sentHigh int64   // the highest seq ever sent; such chunks never change
	memBytes int
	sealed   bool

	file     *os.File
	fileEnd  int64
	fileLive int // spilled chunks not yet acked
	// fileFreed is where the file's live chunks start: the space before
	// it, acked, was given back (see dropThrough).
	fileFreed int64
	spillErr  bool // logged once
}

// spillFreeStep is how much acked space at the head of the spill file is
// given back at a time: a syscall per step rather than per ack.
const spillFreeStep = 1 << 20

func newSpool(dir string, memLimit int, log hclog.Logger) *spool {
	return &spool{
		wake:     make(chan struct{}, 1),
		dir:      dir,
		memLimit: memLimit,
		log:      log,
		sentHigh: -1,
	}
}

// Wake is signalled whenever there may be something new to send: a chunk
// appended, acked (the complete frame waits for the last ack) or rewound.
func (s *spool) Wake() <-chan struct{} { return s.wake }

func (s *spool) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Base is the seq of the oldest unacked chunk.
func (s *spool) Base() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.base()
}

// base is the seq of the oldest unacked chunk (next when none). Callers
// hold mu.
func (s *spool) base() int64 { return s.next - int64(len(s.chunks)) }

// Append sequences a copy of p on stream. It returns false once the spool
// is sealed (the complete frame has claimed the last seq). It never waits
// on the network.
func (s *spool) Append(stream byte, p []byte) bool {
	if len(p) == 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sealed {
		return false
	}
	defer s.notify()
	over := s.memBytes+len(p) > s.memLimit // p goes to the spill file if it can
	// Merge into the last chunk when it has never been sent: fewer, larger
	// frames while the core is away or slower than the job, and no seq the
	// core may hold changes. A spilled one lies at the file's end and
	// takes p there, when p would be spilled anyway.
	if n := len(s.chunks); n > 0 && s.next-1 > s.sentHigh {
		t := &s.chunks[n-1]
		switch {
		case t.stream != stream:
		case t.data != nil && !over && len(t.data)+len(p) <= chunkMax:
			t.data = append(t.data, p...)
			s.memBytes += len(p)
			return true
		case t.data == nil && over && t.n+len(p) <= chunkMax && t.off+int64(t.n) == s.fileEnd:
			if _, ok := s.spillWrite(p); ok {
				t.n += len(p)
				return true
			}
		}
	}
	c := chunk{stream: stream}
	if over && s.spill(&c, p) {
		s.fileLive++
	} else {
		// Past the limit only when the disk failed: better to use memory
		// than to lose the job's bytes.
		c.data = bytes.Clone(p)
		s.memBytes += len(p)
	}
	s.chunks = append(s.chunks, c)
	s.next++
	return true
}

// spill writes p to the spill file and records where in c.
func (s *spool) spill(c *chunk, p []byte) bool {
	off, ok := s.spillWrite(p)
	if ok {
		c.off, c.n = off, len(p)
	}
	return ok
}

// spillWrite appends p to the spill file, which it creates on first use,
// and says where p went.
func (s *spool) spillWrite(p []byte) (int64, bool) {
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "saltpeter-wrapper-spool-*")
		if err != nil {
			s.spillFailed(fmt.Errorf("create spool file: %w", err))
			return 0, false
		}
		// Unlinked at once: the space is freed however the wrapper ends.
		if err := os.Remove(f.Name()); err != nil {
			s.log.Warn("cannot unlink spool file", "path", f.Name(), "error", err)
		}
		s.file = f
	}
	off := s.fileEnd
	if _, err := s.file.WriteAt(p, off); err != nil {
		s.spillFailed(fmt.Errorf("write spool file: %w", err))
		return 0, false
	}
	s.fileEnd += int64(len(p))
	return off, true
}

func (s *spool) spillFailed(err error) {
	if !s.spillErr {
		s.spillErr = true
		s.log.Error("cannot spill output to disk; keeping it in memory", "error", err)
	}
}

// Next hands out the chunk at the cursor and advances it; ok is false when
// everything appended has been sent on this connection.
func (s *spool) Next() (c sendable, ok bool, err error) {
	var buf []byte
	return s.NextInto(&buf)
}

// NextInto is Next reading a spilled chunk into *buf, which it grows when
// too small (to a chunk's largest size): the chunk's data is then the
// caller's buffer, good until the caller reads into it again. A
// connection's writer reads every spilled chunk into one buffer.
func (s *spool) NextInto(buf *[]byte) (c sendable, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cursor >= s.next {
		return sendable{}, false, nil
	}
	ch := s.chunks[s.cursor-s.base()]
	data := ch.data
	if data == nil {
		if ch.n > len(*buf) {
			*buf = make([]byte, max(ch.n, chunkMax))
		}
		data = (*buf)[:ch.n]
		if _, err := s.file.ReadAt(data, ch.off); err != nil {
			return sendable{}, false, fmt.Errorf("read spool file at seq %d: %w", s.cursor, err)
		}
	}
	c = sendable{seq: s.cursor, stream: ch.stream, data: data}
	s.cursor++
	s.sentHigh = max(s.sentHigh, c.seq)
	return c, true, nil
}

// Ack drops every chunk up to and including seq: the core stores in seq
// order, so an ack for seq covers all before it.
func (s *spool) Ack(seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropThrough(seq)
	s.notify()
}

func (s *spool) dropThrough(seq int64) {
	base := s.base()
	if seq < base {
		return
	}
	k := int(min(seq, s.next-1) - base + 1)
	ackedTo := s.fileFreed // past the last spilled chunk dropped
	for i := range k {
		if c := s.chunks[i]; c.data != nil {
			s.memBytes -= len(c.data)
		} else {
			s.fileLive--
			ackedTo = c.off + int64(c.n)
		}
		s.chunks[i] = chunk{} // let the data go before the array does
	}
	s.chunks = s.chunks[k:]
	s.cursor = max(s.cursor, s.base())
	switch {
	case s.fileLive == 0 && s.fileEnd > 0:
		if err := s.file.Truncate(0); err != nil {
			s.log.Warn("cannot truncate spool file", "error", err)
		} else {
			s.fileEnd, s.fileFreed = 0, 0
		}
	case ackedTo-s.fileFreed >= spillFreeStep:
		// A job that outruns the core for long spills for long, with the
		// core acking all the while: chunks are spilled and acked in seq
		// order, so the acked ones are the file's head. Giving it back
		// keeps the file (and its page cache) the size of what is
		// unacked, and the next spills reuse pages just freed.
		if err := freeSpill(s.file, s.fileFreed, ackedTo-s.fileFreed); err != nil {
			s.log.Debug("cannot give back acked spool space", "error", err)
		}
		s.fileFreed = ackedTo
	}
}

// Rewind moves the cursor back to seq (a nack's expected_seq), so that
// everything from there is sent again. It reports false when seq was
// already acked: those bytes are gone, and the caller must not loop on it.
func (s *spool) Rewind(seq int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < s.base() {
		return false
	}
	if seq < s.cursor {
		s.cursor = seq
		s.notify()
	}
	return true
}

// Resume adopts a new connection's next_seq, the core's durable view: the
// chunks below it are dropped, everything from it is sent again.
func (s *spool) Resume(nextSeq int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	var err error
	switch base := s.base(); {
	case nextSeq > s.next:
		// The core has more than was ever sent: drop everything and go on
		// from its seq, so new chunks are not taken for duplicates.
		err = fmt.Errorf("core's next_seq %d is past the last seq sent %d", nextSeq, s.next-1)
		s.dropThrough(s.next - 1)
		s.next = nextSeq
	case nextSeq < base:
		err = fmt.Errorf("core's next_seq %d is below seq %d it already acked; seqs %d..%d cannot be sent again",
			nextSeq, base, nextSeq, base-1)
	default:
		s.dropThrough(nextSeq - 1)
	}
	s.cursor = s.base()
	return err
}

// Pending reports whether some chunk is not acked yet.
func (s *spool) Pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.chunks) > 0
}

// Seal refuses further chunks and returns the last seq, -1 if none: the
// seq the complete frame carries.
func (s *spool) Seal() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealed = true
	return s.next - 1
}

// Close releases the spill file.
func (s *spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	return err
}

// spoolStats is what tests look at.
type spoolStats struct {
	chunks, memBytes, fileLive int
	fileEnd, fileFreed         int64
}

func (s *spool) stats() spoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return spoolStats{chunks: len(s.chunks), memBytes: s.memBytes, fileLive: s.fileLive,
		fileEnd: s.fileEnd, fileFreed: s.fileFreed}
}
