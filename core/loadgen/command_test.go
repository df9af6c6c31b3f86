package loadgen

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

func TestParseCommand(t *testing.T) {
	def := Command{Chunk: DefaultChunk, Stream: wire.StreamStdout}
	with := func(f func(*Command)) Command { c := def; f(&c); return c }
	tests := []struct {
		in      string
		want    Command
		wantErr string // substring; "" for success
	}{
		{in: "sim", want: def},
		{in: "  sim  ", want: def},
		{in: "sim exit=0 duration=100ms output=1024 term=honour",
			want: with(func(c *Command) { c.Duration = 100 * time.Millisecond; c.Output = 1024 })},
		{in: "sim exit=3", want: with(func(c *Command) { c.Exit = 3 })},
		{in: "sim exit=255", want: with(func(c *Command) { c.Exit = 255 })},
		{in: "sim duration=forever term=ignore", want: with(func(c *Command) { c.Duration = Forever; c.Term = TermIgnore })},
		{in: "sim duration=0", want: def},
		{in: "sim duration=1d2h", want: with(func(c *Command) { c.Duration = 26 * time.Hour })},
		{in: "sim term=honor", want: def},
		{in: "sim output=64k chunk=4k stream=stderr",
			want: with(func(c *Command) { c.Output = 64 << 10; c.Chunk = 4 << 10; c.Stream = wire.StreamStderr })},
		{in: "sim output=2M", want: with(func(c *Command) { c.Output = 2 << 20 })},
		{in: "sim output=0", want: def},
		{in: "", wantErr: "must start with"},
		{in: "echo hi", wantErr: "must start with"},
		{in: "simulate exit=1", wantErr: "must start with"},
		{in: "sim exit", wantErr: "not key=value"},
		{in: "sim exit=", wantErr: "not key=value"},
		{in: "sim exit=256", wantErr: "exit=256"},
		{in: "sim exit=-1", wantErr: "exit=-1"},
		{in: "sim exit=x", wantErr: "exit=x"},
		{in: "sim exit=1 exit=2", wantErr: "exit given twice"},
		{in: "sim duration=soon", wantErr: "duration=soon"},
		{in: "sim duration=-1s", wantErr: "duration=-1s"},
		{in: "sim output=lots", wantErr: "output=lots"},
		{in: "sim output=-5", wantErr: "output=-5"},
		{in: "sim output=99999999m", wantErr: "more than"},
		{in: "sim chunk=0", wantErr: "at least 1"},
		{in: "sim chunk=5m", wantErr: "more than"},
		{in: "sim stream=stdin", wantErr: "stdout or stderr"},
		{in: "sim term=maybe", wantErr: "honour or ignore"},
		{in: "sim colour=blue", wantErr: `unknown key "colour"`},
	}
	for _, tc := range tests {
		got, err := ParseCommand(tc.in)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("ParseCommand(%q): %v", tc.in, err)
		case tc.wantErr == "" && !reflect.DeepEqual(got, tc.want):
			t.Errorf("ParseCommand(%q) = %+v, want %+v", tc.in, got, tc.want)
		case tc.wantErr != "" && err == nil:
			t.Errorf("ParseCommand(%q) = %+v, want an error with %q", tc.in, got, tc.wantErr)
		case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
			t.Errorf("ParseCommand(%q) error %q, want it to say %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestParseSources(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		in   string
		want []netip.Addr
		ok   bool
	}{
		{"", nil, true},
		{"127.0.0.2", []netip.Addr{a("127.0.0.2")}, true},
		{"127.0.0.2-127.0.0.4", []netip.Addr{a("127.0.0.2"), a("127.0.0.3"), a("127.0.0.4")}, true},
		{"127.0.0.254-127.0.1.1", []netip.Addr{a("127.0.0.254"), a("127.0.0.255"), a("127.0.1.0"), a("127.0.1.1")}, true},
		{"127.0.0.2, 127.0.0.9", []netip.Addr{a("127.0.0.2"), a("127.0.0.9")}, true},
		{"::1", []netip.Addr{a("::1")}, true},
		{"127.0.0.4-127.0.0.2", nil, false},
		{"127.0.0.2-::1", nil, false},
		{"localhost", nil, false},
		{"127.0.0.2-", nil, false},
		{"10.0.0.0-10.255.255.255", nil, false},
	}
	for _, tc := range tests {
		got, err := ParseSources(tc.in)
		if (err == nil) != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSources(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// Every chunk of the output is the stretch of OutputPattern at its
// offset, whatever the chunk size.
func TestChunksAreThePattern(t *testing.T) {
	const n = 100_000
	want := OutputPattern(n)
	if !bytes.Equal(want[:64], []byte(patternLine)) || want[63] != '\n' {
		t.Fatalf("pattern starts %q", want[:64])
	}
	for _, chunk := range []int{1, 63, 64, 65, 4096, DefaultChunk, MaxChunk} {
		var got []byte
		for off := int64(0); off < n; off += int64(chunk) {
			got = append(got, chunkAt(off, int(min(int64(chunk), n-off)))...)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("chunks of %d do not make the pattern", chunk)
		}
	}
}

// The output ack is read without the JSON decoder; if the core's encoding
// changed, the fast path would silently stop applying.
func TestOutputAckFastPath(t *testing.T) {
	tests := []struct {
		frame wire.Frame
		seq   int64
		ok    bool
	}{
		{wire.AckOutput(0), 0, true},
		{wire.AckOutput(42), 42, true},
		{wire.AckOutput(1 << 40), 1 << 40, true},
		{wire.Ack(wire.TypeStart), 0, false},
		{wire.NackOutOfOrderFrame(3, 5), 0, false},
		{wire.Frame{Type: wire.TypeKill}, 0, false},
	}
	for _, tc := range tests {
		b, err := wire.Encode(tc.frame)
		if err != nil {
			t.Fatal(err)
		}
		seq, ok := parseOutputAck(b)
		if ok != tc.ok || seq != tc.seq {
			t.Errorf("parseOutputAck(%s) = %d, %v; want %d, %v", b, seq, ok, tc.seq, tc.ok)
		}
	}
	for _, in := range []string{`{"type":"ack","seq":,"ack_type":"output"}`, `{"type":"ack","seq":1x,"ack_type":"output"}`} {
		if _, ok := parseOutputAck([]byte(in)); ok {
			t.Errorf("parseOutputAck(%s) accepted", in)
		}
	}
}
