package sdk

import "testing"

// A message gets a buffer at most twice its size, which gRPC zeroes
// whole: gRPC's default pool gives one of 33 KiB a buffer of 1 MiB.
func TestBufferPoolTiers(t *testing.T) {
	for _, size := range []int{100, 4 << 10, 33 << 10, 65<<10 + 9, 300 << 10, 1<<20 + 200, 3 << 20} {
		b := bufferPool.Get(size)
		if len(*b) != size {
			t.Fatalf("Get(%d) has length %d", size, len(*b))
		}
		if cap(*b) > 2*max(size, 4<<10) {
			t.Errorf("Get(%d) has capacity %d, over twice the size", size, cap(*b))
		}
		bufferPool.Put(b)
	}
}
