package proc

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadProcFile(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 511, 512, 513, 5000} {
		t.Run("regular file of "+strconv.Itoa(size)+" bytes", func(t *testing.T) {
			want := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
			path := filepath.Join(dir, strconv.Itoa(size))
			if err := os.WriteFile(path, want, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readProcFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("readProcFile = %d bytes, %v; want the file's %d", len(got), err, size)
			}
		})
	}
	t.Run("a pseudo-file", func(t *testing.T) {
		b, err := readProcFile("/proc/self/stat")
		if err != nil {
			t.Fatal(err)
		}
		p, err := parseStat(os.Getpid(), b)
		if err != nil || p.pid != os.Getpid() || p.state == "" {
			t.Fatalf("/proc/self/stat read as %q: %+v, %v", b, p, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := readProcFile(filepath.Join(dir, "none")); !errors.Is(err, unix.ENOENT) {
			t.Fatalf("got %v, want ENOENT", err)
		}
	})
}
