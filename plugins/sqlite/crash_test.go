package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// The crash helper is this test binary run again: it appends output until
// it is killed, printing each seq once AppendOutput has returned for it.
const (
	crashPathEnv = "SALTPETER_SQLITE_CRASH_PATH"
	crashSyncEnv = "SALTPETER_SQLITE_CRASH_SYNC"
	crashInDBEnv = "SALTPETER_SQLITE_CRASH_IN_DB" // "1": chunks in the database, not in files
	crashChunk   = 16 << 10
	crashMaxSeq  = 100000 // ends a helper whose parent died
)

func crashData(seq int64) []byte {
	return bytes.Repeat([]byte{byte(seq), byte(seq >> 8), 0xa5, '\n'}, crashChunk/4)
}

func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashPathEnv)
	if path == "" {
		t.Skip("only a helper for TestCrashSafety")
	}
	ctx := context.Background()
	o := Options{Path: path, Synchronous: os.Getenv(crashSyncEnv)}
	if os.Getenv(crashInDBEnv) == "1" {
		o.fileChunkMin = 1 << 30
	}
	s, err := Open(ctx, o)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	if err := s.CreateRun(ctx, store.Run{ID: "crash", Job: "j", Machines: []store.Machine{{Machine: "m"}}}); err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	for seq := range int64(crashMaxSeq) {
		stream := "stdout"
		if seq%5 == 0 {
			stream = "stderr"
		}
		if _, err := s.AppendOutput(ctx, "crash", "m", store.Chunk{Seq: seq, Stream: stream, Data: crashData(seq)}); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("acked", seq)
	}
	os.Exit(0)
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a subprocess")
	}
	cases := []struct {
		name   string
		sync   string
		inDB   bool  // the chunks in the database rather than in the run's file
		killAt int64 // kill once this seq is acked
	}{
		{"normal early", SyncNormal, false, 3},
		{"normal", SyncNormal, false, 150},
		{"normal in the database", SyncNormal, true, 150},
		// In the database, about two pages of WAL a chunk: killed after
		// the background checkpointer has checkpointed, and restarted
		// the WAL, many times, maybe in the middle of it.
		{"normal past checkpoints", SyncNormal, true, 1500},
		{"normal many chunks", SyncNormal, false, 1500},
		{"full", SyncFull, false, 60},
		{"full in the database", SyncFull, true, 60},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "saltpeter.db")
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashPathEnv+"="+path, crashSyncEnv+"="+c.sync)
			if c.inDB {
				cmd.Env = append(cmd.Env, crashInDBEnv+"=1")
			}
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			lines := bufio.NewScanner(out)
			acked := int64(-1)
			killed := false
			for lines.Scan() {
				line := lines.Text()
				switch {
				case line == "ready":
					// The helper holds the database: a second opener is
					// told who.
					_, err := Open(context.Background(), Options{Path: path})
					want := fmt.Sprintf("in use by pid %d", cmd.Process.Pid)
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("Open while the helper runs = %v, want %q", err, want)
					}
				case strings.HasPrefix(line, "acked "):
					seq, err := strconv.ParseInt(strings.TrimPrefix(line, "acked "), 10, 64)
					if err != nil || seq != acked+1 {
						t.Fatalf("helper said %q after %d", line, acked)
					}
					acked = seq
					if seq >= c.killAt && !killed {
						// Mid-stream: the helper is appending the next chunks.
						if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
							t.Fatal(err)
						}
						killed = true
					}
				case strings.HasPrefix(line, "error"):
					t.Fatalf("helper: %s", line)
				}
			}
			// Lines written before the kill are acks too; the scanner
			// read them all before seeing the end of the pipe.
			err = cmd.Wait()
			if !killed || err == nil {
				t.Fatalf("helper ended without being killed: %v", err)
			}
			t.Logf("killed after %d acked chunks", acked+1)

			s := openTest(t, path)
			checkContiguous(t, s, acked)
		})
	}
}

// checkContiguous checks that the crash run holds every chunk from 0 up to
// at least acked, with no holes, byte-exact.
func checkContiguous(t *testing.T, s *Store, acked int64) {
	t.Helper()
	ctx := context.Background()
	r, err := s.GetRun(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	m := r.Machines[0]
	if m.NextSeq < acked+1 {
		t.Fatalf("next seq %d after reopen, but %d chunks were acked", m.NextSeq, acked+1)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, data, file_off, size FROM output_chunks WHERE run_id = 'crash' AND machine = 'm' ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var want, size int64
	for rows.Next() {
		var seq, n int64
		var data []byte
		var off sql.NullInt64
		if err := rows.Scan(&seq, &data, &off, &n); err != nil {
			t.Fatal(err)
		}
		if off.Valid {
			data = fileBytes(t, s, "crash", off.Int64, n)
		}
		if seq != want {
			t.Fatalf("chunk %d follows %d: a hole", seq, want-1)
		}
		if !bytes.Equal(data, crashData(seq)) {
			t.Fatalf("chunk %d holds other bytes", seq)
		}
		want++
		size += int64(len(data))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want != m.NextSeq || size != m.OutputBytes {
		t.Errorf("%d chunks of %d bytes stored, machine says next %d and %d bytes", want, size, m.NextSeq, m.OutputBytes)
	}
	out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "crash", Machine: "m"})
	data, total := out.Data, out.Total
	if err != nil || total != size || int64(len(data)) != size {
		t.Errorf("ReadOutput = %d bytes of %d, %v; want %d", len(data), total, err, size)
	}
	// And it takes the next chunk.
	if next, err := s.AppendOutput(ctx, "crash", "m", store.Chunk{Seq: m.NextSeq, Stream: "stdout", Data: []byte("x")}); err != nil || next != m.NextSeq+1 {
		t.Errorf("append after the crash = %d, %v", next, err)
	}
}

// fileBytes reads n bytes at off in runID's output file, failing the test
// when it does not hold them.
func fileBytes(t *testing.T, s *Store, runID string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(s.files.path(runID))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("output file of %s at %d: %v", runID, off, err)
	}
	return b
}
