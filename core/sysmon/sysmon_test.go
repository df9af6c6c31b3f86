package sysmon

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

const envChild = "SYSMON_TEST_CHILD"

// TestMain runs the test binary as the child the tests start: it says
// what it sees before and after Awake on standard output, then waits for
// its standard input to close.
func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "" {
		os.Exit(m.Run())
	}
	schedtraceMS = "20" // a summary every 20ms, for the test to see the setting take
	_, reexecuted := os.LookupEnv(envRestore)
	fmt.Printf("before pid=%d reexecuted=%v\n", os.Getpid(), reexecuted)
	if err := Awake(); err != nil {
		fmt.Printf("error %v\n", err)
	}
	godebug, had := os.LookupEnv("GODEBUG")
	_, mark := os.LookupEnv(envRestore)
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		fmt.Printf("error %v\n", err)
	}
	fmt.Printf("after pid=%d godebug=%q had=%v mark=%v comm=%q\n", os.Getpid(), godebug, had, mark, strings.TrimSpace(string(comm)))
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

func TestAwake(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Awake re-executes through /proc on Linux only")
	}
	for _, tc := range []struct {
		name     string
		env      []string // beside the child's marker; GODEBUG unset unless here
		reexec   bool
		godebug  string // after Awake
		hadDebug bool
	}{
		{name: "no GODEBUG", reexec: true},
		{name: "GODEBUG kept", env: []string{"GODEBUG=madvdontneed=1"}, reexec: true, godebug: "madvdontneed=1", hadDebug: true},
		{name: "empty GODEBUG kept", env: []string{"GODEBUG="}, reexec: true, hadDebug: true},
		{name: "turned off", env: []string{EnvDeepSleep + "=1"}},
		{name: "operator's schedtrace", env: []string{"GODEBUG=schedtrace=0"}, godebug: "schedtrace=0", hadDebug: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "GODEBUG=") && !strings.HasPrefix(kv, EnvDeepSleep+"=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(append(cmd.Env, envChild+"=1"), tc.env...)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			stderr := &lockedBuffer{seen: make(chan struct{})}
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer stdin.Close()

			var lines []string
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines = append(lines, sc.Text())
				if strings.HasPrefix(sc.Text(), "after ") {
					break
				}
			}
			pid := cmd.Process.Pid
			want := []string{fmt.Sprintf("before pid=%d reexecuted=false", pid)}
			if tc.reexec {
				want = append(want, fmt.Sprintf("before pid=%d reexecuted=true", pid))
			}
			// The process keeps its name (the kernel's: the first 15 bytes
			// of the program's file name), which ps, top and pgrep show.
			comm := filepath.Base(os.Args[0])
			comm = comm[:min(len(comm), 15)]
			want = append(want, fmt.Sprintf("after pid=%d godebug=%q had=%v mark=false comm=%q", pid, tc.godebug, tc.hadDebug, comm))
			if strings.Join(lines, "\n") != strings.Join(want, "\n") {
				t.Fatalf("the child said:\n%s\nwant:\n%s\nstderr: %s", strings.Join(lines, "\n"), strings.Join(want, "\n"), stderr)
			}
			if tc.reexec {
				// The runtime took the setting: its monitor prints the
				// scheduler's summary.
				select {
				case <-stderr.seen:
				case <-time.After(30 * time.Second):
					t.Fatalf("no scheduler summary from the re-executed child; stderr: %s", stderr)
				}
			}
		})
	}
}

// lockedBuffer is a child's standard error; seen closes at the first
// scheduler summary.
type lockedBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	seen chan struct{}
	done bool
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if !b.done && bytes.Contains(b.buf.Bytes(), []byte("SCHED ")) {
		b.done = true
		close(b.seen)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
