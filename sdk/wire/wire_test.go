package wire

import (
	"bytes"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"30d", 30 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"500ms", 500 * time.Millisecond, true},
		{"", 0, false},
		{"5 minutes", 0, false},
		{"-1s", 0, false},
		{"d", 0, false},
		{"200000d", 0, false},
		{"3x", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok {
			back, err := ParseDuration(FormatDuration(got))
			if err != nil || back != got {
				t.Errorf("FormatDuration(%v) = %q does not read back: %v %v", got, FormatDuration(got), back, err)
			}
		}
	}
}

func TestBinaryOutputRoundTrip(t *testing.T) {
	data := []byte{0xff, 0x00, 'a', 0xfe}
	for _, stream := range []string{StreamStdout, StreamStderr, StreamSystem} {
		b, err := EncodeBinaryOutput(stream, 1<<40, data)
		if err != nil {
			t.Fatal(err)
		}
		s, seq, got, err := DecodeBinaryOutput(b)
		if err != nil || s != stream || seq != 1<<40 || !bytes.Equal(got, data) {
			t.Fatalf("round trip of %s: %q %d %q %v", stream, s, seq, got, err)
		}
	}
	if _, _, _, err := DecodeBinaryOutput([]byte{1, 0, 0}); err == nil {
		t.Fatal("short frame decoded")
	}
	if _, _, _, err := DecodeBinaryOutput(append([]byte{9}, make([]byte, 8)...)); err == nil {
		t.Fatal("unknown stream code decoded")
	}
	if _, err := EncodeBinaryOutput("stdin", 0, nil); err == nil {
		t.Fatal("unknown stream encoded")
	}
	if _, err := EncodeBinaryOutput(StreamStdout, -1, nil); err == nil {
		t.Fatal("negative seq encoded")
	}
	// A header written before the data makes the same frame.
	h, err := BinaryOutputHeader(StreamStderr, 77)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := EncodeBinaryOutput(StreamStderr, 77, data)
	if err != nil || !bytes.Equal(append(h[:], data...), whole) {
		t.Fatalf("header and data %x, frame %x (%v)", append(h[:], data...), whole, err)
	}
}

func TestSetBytesKeepsInvalidUTF8(t *testing.T) {
	f := Frame{Type: TypeOutput}
	f.SetBytes([]byte("plain"))
	if f.Data != "plain" || f.DataB64 != nil {
		t.Fatalf("valid UTF-8 went to %+v", f)
	}
	f.SetBytes([]byte{'a', 0xff})
	enc, err := Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(enc)
	if err != nil || !bytes.Equal(back.Bytes(), []byte{'a', 0xff}) {
		t.Fatalf("invalid UTF-8 round trip: %q %v", back.Bytes(), err)
	}
}

func TestSignals(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"SIGTERM", "SIGTERM", true},
		{"term", "SIGTERM", true},
		{"SIGUSR1", "SIGUSR1", true},
		{"SIGNOPE", "", false},
	}
	for _, tc := range tests {
		got, ok := CanonicalSignal(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CanonicalSignal(%q) = %q %v", tc.in, got, ok)
		}
	}
	if n, _ := SignalNumber("SIGUSR1"); n != 10 {
		t.Fatalf("SIGUSR1 = %d", n)
	}
}

func TestDecodeRefusesFramesWithoutType(t *testing.T) {
	for _, in := range []string{`{}`, `[]`, `"x"`, `{"type":""}`, `not json`} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%s) accepted", in)
		}
	}
}
