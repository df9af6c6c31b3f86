package grpcbuf

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// Pool holds the buffers both ends of a plugin's gRPC connection read
// frames into and marshal and gather messages in: a chunk of output on
// its way to the store goes through two of them in the plugin.
//
// gRPC's own pools do not fit that traffic. The default one serves a
// message from the smallest of its tiers that holds it (256 B, 4, 16 and
// 32 KiB, 1 MiB), so a message of a little over 32 KiB takes a buffer of
// a megabyte; and every pool gRPC exports zeroes a buffer's whole
// capacity on every Get, which was 5–6% of the core's and the store
// plugin's CPU while output streamed. This one has a tier at every power
// of two up to 4 MiB (the largest message gRPC takes by default), so a
// buffer is at most twice its message, and it hands buffers back as they
// were left. gRPC writes every byte of a buffer's length before it reads
// any (a frame's payload is read in full, a message is marshalled or
// copied whole), and a plugin's buffers never leave its process.
var Pool mem.BufferPool = newTieredPool(8, 22)

// tieredPool keeps one sync.Pool per power of two from 1<<min to 1<<max
// bytes; larger buffers are made and dropped.
type tieredPool struct {
	min, max uint
	tiers    []sync.Pool
}

func newTieredPool(min, max uint) *tieredPool {
	return &tieredPool{min: min, max: max, tiers: make([]sync.Pool, max-min+1)}
}

// tier is the smallest power of two that holds size bytes.
func (p *tieredPool) tier(size int) uint {
	if size <= 1<<p.min {
		return p.min
	}
	return uint(bits.Len(uint(size - 1)))
}

// Get implements mem.BufferPool. The buffer's contents are whatever
// its last user left.
func (p *tieredPool) Get(size int) *[]byte {
	e := p.tier(size)
	if e > p.max {
		b := make([]byte, size)
		return &b
	}
	if b, ok := p.tiers[e-p.min].Get().(*[]byte); ok {
		*b = (*b)[:size]
		return b
	}
	b := make([]byte, size, 1<<e)
	return &b
}

// Put implements mem.BufferPool; a buffer whose capacity is not one of
// the tiers' is left to the collector.
func (p *tieredPool) Put(b *[]byte) {
	c := cap(*b)
	if c == 0 || c&(c-1) != 0 {
		return
	}
	e := uint(bits.TrailingZeros(uint(c)))
	if e < p.min || e > p.max {
		return
	}
	p.tiers[e-p.min].Put(b)
}
