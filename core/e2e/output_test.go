package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// outputMatchesFile fails unless a machine's stored stream is, byte for
// byte, the file at path; both are read a MiB at a time, so that output
// of hundreds of MiB is never whole in memory.
func (c *core) outputMatchesFile(id, machine, stream, path string) {
	c.t.Helper()
	resp, err := c.http().Get(c.url("/api/v1/runs/" + id + "/machines/" + machine + "/output?stream=" + stream))
	if err != nil {
		c.t.Fatalf("get output: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("get output: status %d: %s", resp.StatusCode, b)
	}
	f, err := os.Open(path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	got, want := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); ; {
		n, gerr := io.ReadFull(resp.Body, got)
		m, werr := io.ReadFull(f, want)
		if !bytes.Equal(got[:n], want[:m]) {
			i := int64(firstDiff(string(got[:n]), string(want[:m])))
			c.t.Fatalf("stored %s differs from %s at byte %d", stream, filepath.Base(path), off+i)
		}
		off += int64(n)
		gend, wend := gerr == io.EOF || gerr == io.ErrUnexpectedEOF, werr == io.EOF || werr == io.ErrUnexpectedEOF
		switch {
		case gerr != nil && !gend:
			c.t.Fatalf("read output at byte %d: %v", off, gerr)
		case werr != nil && !wend:
			c.t.Fatal(werr)
		case gend || wend:
			return
		}
	}
}

// TestLargeOutputByteExact: a job writes 6 MiB and a bit at once, far
// faster than the core stores it, so the wrapper spills, the core
// batches chunks of up to wire.MaxOutputChunk, and they cross to the
// store plugin in place (sdk/store's batchOut and batchIn) and into its
// files. What each store keeps is the job's bytes, in order, none from
// another chunk's buffer.
func TestLargeOutputByteExact(t *testing.T) {
	t.Parallel()
	const size = 6<<20 + 12345 // the last chunk a partial one
	src := filepath.Join(t.TempDir(), "payload")
	writePayload(t, src, size)
	for _, st := range []struct {
		name  string
		block func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) string { return "" }},
		{"postgres", func(t *testing.T) string { return postgresStore(t, "") }},
	} {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			c := startCore(t, coreBlock("")+st.block(t)+job("spew", "cat "+src, ""))
			id := c.runNow("spew")
			r := c.waitFinal(id, 2*time.Minute)
			if r.Status != "succeeded" || len(r.Machines) != 1 || r.Machines[0].OutputBytes != size {
				t.Fatalf("run %+v, want succeeded with %d bytes", r, size)
			}
			c.outputMatchesFile(id, hostname(t), "stdout", src)
		})
	}
}
