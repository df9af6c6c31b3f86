package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Stream codes in byte 0 of a v2 binary output frame.
const (
	BinaryStdout byte = 1
	BinaryStderr byte = 2
	BinarySystem byte = 3
)

// BinaryHeaderBytes is what a v2 binary output frame adds to its data:
// the stream byte and the 8-byte big-endian seq.
const BinaryHeaderBytes = binaryHeader

// MaxOutputChunk is the most output data saltpeter-wrapper puts in one
// frame: four times what a Linux pipe holds by default, so that the
// output of a job that outruns the core goes in a quarter of the frames,
// store items and acks, each with its cost whatever its size (larger
// chunks were no cheaper in BenchmarkOutputThroughput). The core takes
// larger frames (up to MaxFrameBytes); the core's read buffers and the
// load generator are sized after this one.
const MaxOutputChunk = 256 << 10

const binaryHeader = 9

// ErrShortBinary is returned for a binary frame too short for its header.
var ErrShortBinary = errors.New("binary output frame shorter than its 9-byte header")

// StreamCode maps a stream name to its binary code; ok is false for an
// unknown stream.
func StreamCode(stream string) (byte, bool) {
	switch stream {
	case StreamStdout:
		return BinaryStdout, true
	case StreamStderr:
		return BinaryStderr, true
	case StreamSystem:
		return BinarySystem, true
	}
	return 0, false
}

// StreamName maps a binary stream code to its name.
func StreamName(code byte) (string, bool) {
	switch code {
	case BinaryStdout:
		return StreamStdout, true
	case BinaryStderr:
		return StreamStderr, true
	case BinarySystem:
		return StreamSystem, true
	}
	return "", false
}

// EncodeBinaryOutput builds a v2 binary output frame.
func EncodeBinaryOutput(stream string, seq int64, data []byte) ([]byte, error) {
	h, err := BinaryOutputHeader(stream, seq)
	if err != nil {
		return nil, err
	}
	b := make([]byte, binaryHeader+len(data))
	copy(b, h[:])
	copy(b[binaryHeader:], data)
	return b, nil
}

// BinaryOutputHeader is what a v2 binary output frame has before its
// data, for a sender that writes the data after it rather than copy both
// into one frame first.
func BinaryOutputHeader(stream string, seq int64) ([BinaryHeaderBytes]byte, error) {
	var h [BinaryHeaderBytes]byte
	code, ok := StreamCode(stream)
	if !ok {
		return h, fmt.Errorf("encode binary output: unknown stream %q", stream)
	}
	if seq < 0 {
		return h, fmt.Errorf("encode binary output: negative seq %d", seq)
	}
	h[0] = code
	binary.BigEndian.PutUint64(h[1:], uint64(seq))
	return h, nil
}

// DecodeBinaryOutput parses a v2 binary output frame. The returned data
// aliases b.
func DecodeBinaryOutput(b []byte) (stream string, seq int64, data []byte, err error) {
	if len(b) < binaryHeader {
		return "", 0, nil, ErrShortBinary
	}
	stream, ok := StreamName(b[0])
	if !ok {
		return "", 0, nil, fmt.Errorf("decode binary output: unknown stream code %d", b[0])
	}
	u := binary.BigEndian.Uint64(b[1:binaryHeader])
	if u > 1<<62 {
		return "", 0, nil, fmt.Errorf("decode binary output: seq %d out of range", u)
	}
	return stream, int64(u), b[binaryHeader:], nil
}
