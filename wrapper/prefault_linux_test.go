package wrapper

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// residentOfSelf sums the Size and Rss (kB) of the mappings of this
// program's own file, from /proc/self/smaps.
func residentOfSelf(t *testing.T) (size, rss int) {
	t.Helper()
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &self); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m, ok := parseMapping(line); ok {
			in = sameFile(m, &self)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !in || !ok || (k != "Size" && k != "Rss") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		if err != nil {
			t.Fatalf("smaps line %q: %v", line, err)
		}
		if k == "Size" {
			size += n
		} else {
			rss += n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return size, rss
}

func TestPrefaultMapsInTheProgram(t *testing.T) {
	n, err := Prefault()
	if err != nil {
		t.Skipf("this kernel cannot populate mappings: %v", err)
	}
	size, rss := residentOfSelf(t)
	if size == 0 {
		t.Fatal("found no mapping of the test binary in /proc/self/smaps")
	}
	if n/1024 != size {
		t.Errorf("Prefault populated %d kB, want the %d kB this program maps of its file", n/1024, size)
	}
	if rss != size {
		t.Errorf("after Prefault %d kB of the program's %d kB are resident, want all", rss, size)
	}
}

func TestParseMapping(t *testing.T) {
	for _, tc := range []struct {
		line string
		want mapping
		ok   bool
	}{
		{"00400000-006d5000 r-xp 00000000 fe:00 10199407                   /usr/bin/saltpeter-wrapper",
			mapping{start: 0x400000, end: 0x6d5000, perms: "r-xp", major: 0xfe, minor: 0, inode: 10199407}, true},
		{"7f36de6d8000-7f36de6da000 r-xp 00000000 00:00 0                  [vdso]",
			mapping{start: 0x7f36de6d8000, end: 0x7f36de6da000, perms: "r-xp"}, true},
		{"Rss:                2388 kB", mapping{}, false},
		{"zz-10 r-xp 0 fe:00 1 /x", mapping{}, false},
	} {
		got, ok := parseMapping(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseMapping(%q) = %+v, %t; want %+v, %t", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}
