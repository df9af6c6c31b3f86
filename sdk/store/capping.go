package store

import "fmt"

// HeadBytes is the part of cap kept from the start of a machine's output.
func HeadBytes(cap int64) int64 { return cap / 2 }

// ToDrop says how many of the oldest droppable chunks, whose sizes are
// given oldest first, to drop, and how many bytes that frees: each one
// that leaves at least cap bytes stored. So a machine past its cap keeps
// between cap and cap plus one chunk, or its head chunks and its newest
// where those alone are more (chunks larger than half the cap), and its
// tail is never less than the cap less its head, however large its chunks
// are against the cap.
func ToDrop(cap, stored int64, sizes []int64) (n int, freed int64) {
	for n < len(sizes) && stored-freed-sizes[n] >= cap {
		freed += sizes[n]
		n++
	}
	return n, freed
}

// Droppable is a chunk the output cap may drop: its seq and size.
type Droppable struct{ Seq, Size int64 }

// DropOldest is a store's output cap loop after an append that left stored
// bytes above capBytes: oldest returns the oldest droppable chunks, a few
// at a time, oldest first (chunks starting at or after HeadBytes, not the
// newest); drop deletes the chunks whose seqs are first to last, which
// are every droppable chunk in that range. It drops as ToDrop says and
// returns the bytes then stored.
func DropOldest(capBytes, stored int64, oldest func() ([]Droppable, error), drop func(first, last int64) error) (int64, error) {
	for {
		cands, err := oldest()
		if err != nil {
			return 0, err
		}
		sizes := make([]int64, len(cands))
		for i, c := range cands {
			sizes[i] = c.Size
		}
		n, freed := ToDrop(capBytes, stored, sizes)
		if n == 0 {
			return stored, nil
		}
		if err := drop(cands[0].Seq, cands[n-1].Seq); err != nil {
			return 0, err
		}
		stored -= freed
		if n < len(cands) {
			return stored, nil
		}
	}
}

// DroppedMarker is what ReadOutput shows in place of n dropped bytes. It
// starts with a newline of its own so that it stands on a line even when
// the byte before it did not end one.
func DroppedMarker(n int64) []byte {
	return fmt.Appendf(nil, "\n[saltpeter: %d bytes of output dropped here by max_output_per_machine]\n", n)
}

// ReadPlan assembles a ReadOutput answer from the stored chunks of a
// selection, given in offset order, marking the holes dropped chunks
// left. A store reads the chunks that end past the query's offset and
// hands each to Add until Add says the answer is full.
type ReadPlan struct {
	limit int64
	out   Output
	full  bool
	// lostTo, when not 0, ends a stretch of lost chunks from out.Next
	// not shown yet: the chunks that follow it may lengthen it, so that
	// it is shown as one marker.
	lostTo int64
}

// NewReadPlan starts an answer to q, whose selection is total bytes long
// (dropped bytes included). A negative offset reads from 0.
func NewReadPlan(q OutputQuery, total int64) *ReadPlan {
	off := max(q.Offset, 0)
	return &ReadPlan{limit: q.Limit, out: Output{Data: []byte{}, Next: off, Total: total}}
}

// Offset is where the answer has got to: chunks ending at or before it
// are not needed.
func (p *ReadPlan) Offset() int64 { return p.out.Next }

// Add takes the stored chunk that starts at offset start of the
// selection. It reports whether the answer has room for more; once it
// says false, further chunks are ignored. A chunk ending at or before the
// answer's offset is skipped.
func (p *ReadPlan) Add(start int64, data []byte) bool {
	if p.full || !p.showLost() {
		return false
	}
	end := start + int64(len(data))
	if end <= p.out.Next {
		return true
	}
	if start > p.out.Next && !p.mark(DroppedMarker(start-p.out.Next), start) {
		return false
	}
	part := data[p.out.Next-start:]
	if p.limit > 0 {
		room := max(p.limit-int64(len(p.out.Data)), 0)
		if int64(len(part)) >= room {
			part = part[:room]
			p.full = true
		}
	}
	p.out.Data = append(p.out.Data, part...)
	p.out.Next += int64(len(part))
	return !p.full
}

// LostMarker is what ReadOutput shows in place of n bytes a store
// acknowledged and no longer has (lost to a crash of the machine it runs
// on), so that the rest of the output still reads.
func LostMarker(n int64) []byte {
	return fmt.Appendf(nil, "\n[saltpeter: %d bytes of output lost by the store]\n", n)
}

// AddLost takes a stored chunk of n bytes at start whose bytes the store
// has lost, shown as LostMarker; lost chunks that follow one another are
// shown as one marker. It reports what Add would.
func (p *ReadPlan) AddLost(start, n int64) bool {
	if p.full {
		return false
	}
	end := start + n
	if p.lostTo != 0 && start == p.lostTo {
		p.lostTo = end
		return true
	}
	if !p.showLost() {
		return false
	}
	if end <= p.out.Next {
		return true
	}
	if start > p.out.Next && !p.mark(DroppedMarker(start-p.out.Next), start) {
		return false
	}
	p.lostTo = end
	return true
}

// showLost adds the marker of the lost stretch waiting, if any; false
// when the answer is full.
func (p *ReadPlan) showLost() bool {
	if p.lostTo == 0 {
		return true
	}
	to := p.lostTo
	p.lostTo = 0
	if !p.mark(LostMarker(to-p.out.Next), to) {
		return false
	}
	if p.limit > 0 && int64(len(p.out.Data)) >= p.limit {
		p.full = true
	}
	return !p.full
}

// mark adds marker for the bytes up to next. A marker is never cut: past
// the limit it waits for the next read, unless it would be that read's
// first byte too; then mark says false and the answer is full.
func (p *ReadPlan) mark(marker []byte, next int64) bool {
	if len(p.out.Data) > 0 && p.limit > 0 && int64(len(p.out.Data)+len(marker)) > p.limit {
		p.full = true
		return false
	}
	p.out.Data = append(p.out.Data, marker...)
	p.out.Next = next
	return true
}

// Done returns the answer, with the lost stretch it ends with if any.
func (p *ReadPlan) Done() Output {
	p.showLost()
	return p.out
}
