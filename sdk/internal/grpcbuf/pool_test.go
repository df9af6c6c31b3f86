package grpcbuf

import "testing"

// A message gets a buffer at most twice its size (gRPC's default pool
// gives one of 33 KiB a buffer of 1 MiB).
func TestPoolTiers(t *testing.T) {
	for _, size := range []int{0, 1, 100, 256, 257, 4 << 10, 33 << 10, 65<<10 + 9, 300 << 10, 1<<20 + 200, 3 << 20, 4 << 20, 4<<20 + 1} {
		b := Pool.Get(size)
		if len(*b) != size {
			t.Fatalf("Get(%d) has length %d", size, len(*b))
		}
		if cap(*b) > 2*max(size, 256) {
			t.Errorf("Get(%d) has capacity %d, over twice the size", size, cap(*b))
		}
		Pool.Put(b)
	}
}

// A buffer put back is offered again from its own tier only.
func TestPoolPutOddCapacity(t *testing.T) {
	p := newTieredPool(8, 12)
	for _, c := range []int{0, 100, 3000, 1 << 13} {
		b := make([]byte, c)
		p.Put(&b) // dropped: no tier has that capacity
	}
	for _, size := range []int{10, 300, 4096} {
		if b := p.Get(size); cap(*b) != 1<<p.tier(size) {
			t.Errorf("Get(%d) has capacity %d, want %d", size, cap(*b), 1<<p.tier(size))
		}
	}
}
