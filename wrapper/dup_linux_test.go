package wrapper

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestCloseOnExec: both ways of marking descriptors close-on-exec (one
// close_range, and the listing older kernels get) mark a descriptor
// opened without the flag, and leave standard input, output and error
// alone.
func TestCloseOnExec(t *testing.T) {
	for _, tc := range []struct {
		name string
		mark func() error
	}{
		{"close_range", closeOnExecAll},
		{"listed", markListedCloseOnExec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p [2]int
			if err := unix.Pipe2(p[:], 0); err != nil { // no O_CLOEXEC
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
			if err := tc.mark(); err != nil {
				t.Fatalf("mark: %v", err)
			}
			for _, fd := range p {
				flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
				if err != nil {
					t.Fatal(err)
				}
				if flags&unix.FD_CLOEXEC == 0 {
					t.Errorf("fd %d is not close-on-exec", fd)
				}
			}
			for fd := range 3 {
				flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
				if err != nil {
					continue // not open in this test process
				}
				if flags&unix.FD_CLOEXEC != 0 {
					t.Errorf("fd %d was marked close-on-exec", fd)
				}
			}
		})
	}
}
