package loadgen

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Forever is Command.Duration for a job that runs until it is killed (or
// its timeout ends it).
const Forever time.Duration = -1

// Term is how a fake job reacts to the signal of a kill or a timeout.
type Term int

const (
	// TermHonour: the job dies of the signal at once.
	TermHonour Term = iota
	// TermIgnore: the job ignores it and dies only at the SIGKILL step,
	// once the kill policy's grace has passed.
	TermIgnore
)

func (t Term) String() string {
	if t == TermIgnore {
		return "ignore"
	}
	return "honour"
}

// DefaultChunk is the output frame size when the command names none: the
// real wrapper's largest chunk, so that a fake job's output costs the core
// as many frames as a real one's.
const DefaultChunk = wire.MaxOutputChunk

// MaxChunk bounds chunk=, well inside the core's frame limit.
const MaxChunk = 4 << 20

// maxOutput bounds output=: the bytes are generated, not stored, but a
// typo should not send a terabyte.
const maxOutput = 1 << 36

// Command is what a fake job does, read from the job's command (which a
// v2 wrapper receives in the spec of the connect ack).
type Command struct {
	Exit     int           // exit code when it ends by itself
	Duration time.Duration // from start to exit; 0 at once, Forever until killed
	Output   int64         // bytes written at start, OutputPattern's
	Chunk    int           // bytes per output frame
	Stream   string        // wire.StreamStdout or wire.StreamStderr
	Term     Term
}

// ParseCommand reads the command language:
//
//	sim [exit=N] [duration=D|forever] [output=BYTES] [chunk=BYTES]
//	    [stream=stdout|stderr] [term=honour|ignore]
//
// Durations are wire.ParseDuration's ("100ms", "2h", "1d"); byte counts
// take a k or m suffix (KiB, MiB). Every key is optional and may appear
// once; anything else is an error, so a typo is seen at the first run
// rather than silently meaning "exit 0 at once".
func ParseCommand(s string) (Command, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 || fields[0] != "sim" {
		return Command{}, fmt.Errorf("command %q is not a sim command: it must start with \"sim\"", s)
	}
	c := Command{Chunk: DefaultChunk, Stream: wire.StreamStdout}
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return Command{}, fmt.Errorf("sim command: %q is not key=value", f)
		}
		if seen[k] {
			return Command{}, fmt.Errorf("sim command: %s given twice", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "exit":
			c.Exit, err = strconv.Atoi(v)
			if err == nil && (c.Exit < 0 || c.Exit > 255) {
				err = errors.New("out of 0..255")
			}
		case "duration":
			if v == "forever" {
				c.Duration = Forever
			} else if v == "0" {
				c.Duration = 0
			} else {
				c.Duration, err = wire.ParseDuration(v)
			}
		case "output":
			c.Output, err = parseBytes(v, maxOutput)
		case "chunk":
			var n int64
			n, err = parseBytes(v, MaxChunk)
			if err == nil && n == 0 {
				err = errors.New("must be at least 1")
			}
			c.Chunk = int(n)
		case "stream":
			if v != wire.StreamStdout && v != wire.StreamStderr {
				err = errors.New("want stdout or stderr")
			}
			c.Stream = v
		case "term":
			switch v {
			case "honour", "honor":
				c.Term = TermHonour
			case "ignore":
				c.Term = TermIgnore
			default:
				err = errors.New("want honour or ignore")
			}
		default:
			return Command{}, fmt.Errorf("sim command: unknown key %q (keys: exit, duration, output, chunk, stream, term)", k)
		}
		if err != nil {
			return Command{}, fmt.Errorf("sim command: %s=%s: %w", k, v, err)
		}
	}
	return c, nil
}

// parseBytes reads a byte count with an optional k or m suffix.
func parseBytes(v string, limit int64) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "k"), strings.HasSuffix(v, "K"):
		mult, v = 1<<10, v[:len(v)-1]
	case strings.HasSuffix(v, "m"), strings.HasSuffix(v, "M"):
		mult, v = 1<<20, v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("not a byte count (forms: 1024, 64k, 2m)")
	}
	if n > limit/mult {
		return 0, fmt.Errorf("more than %d bytes", limit)
	}
	return n * mult, nil
}

// patternLine is the output's repeating unit: 64 bytes, so that a reader
// can check any stretch of stored output by its offset alone.
const patternLine = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_\n"

// OutputPattern returns the n bytes a fake job with output=n writes: byte
// i is patternLine[i%64].
func OutputPattern(n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = patternLine[i%len(patternLine)]
	}
	return b
}

// patternBuf holds MaxChunk bytes of pattern past any offset within a
// line, so every chunk is a slice of it and sending output allocates
// nothing per frame.
var patternBuf = sync.OnceValue(func() []byte { return OutputPattern(MaxChunk + int64(len(patternLine))) })

// chunkAt is the output between offsets off and off+n (n ≤ MaxChunk).
func chunkAt(off int64, n int) []byte {
	s := int(off % int64(len(patternLine)))
	return patternBuf()[s : s+n]
}
