package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Protocol versions.
const (
	ProtocolV1 = 1
	ProtocolV2 = 2
)

// MaxFrameBytes is the largest frame the core accepts. The spec asks for at
// least 4 MiB: v1 sends up to 500 KiB of output per frame, which can grow
// six-fold when JSON escapes control bytes.
const MaxFrameBytes = 8 << 20

// Frame types.
const (
	TypeConnect      = "connect"
	TypeStart        = "start"
	TypeHeartbeat    = "heartbeat"
	TypeOutput       = "output"
	TypeSyncRequest  = "sync_request"
	TypeComplete     = "complete"
	TypeError        = "error"
	TypeKilled       = "killed"
	TypeAck          = "ack"
	TypeNack         = "nack"
	TypeSyncResponse = "sync_response"
	TypeKill         = "kill"
	TypeSignal       = "signal"
)

// Error codes the core sends in {"type":"error","code":...}.
const (
	CodeUnauthorized = "UNAUTHORIZED"
	CodeTooLarge     = "TOO_LARGE"
	CodeUnknownType  = "UNKNOWN_TYPE"
	CodeJobNotFound  = "JOB_NOT_FOUND"
	CodeBadFrame     = "BAD_FRAME"
	CodeWrongRun     = "WRONG_RUN"
	CodeFinal        = "ALREADY_FINAL"
)

// Nack types.
const NackOutOfOrder = "out_of_order"

// Reasons a v2 wrapper gives in complete.
const (
	ReasonExit            = "exit"
	ReasonSignal          = "signal"
	ReasonKilled          = "killed"
	ReasonTimeout         = "timeout"
	ReasonNoOutputTimeout = "no_output_timeout"
)

// Exit codes with a meaning of their own (see "Exit codes" in the spec).
const (
	ExitTimeout    = 124
	ExitKilled     = 143
	ExitLost       = 253
	ExitNotStarted = 254
	ExitError      = 255
)

// Output streams.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamSystem = "system"
)

// Spec is the job as the core hands it to a v2 wrapper in the connect ack.
// Durations are duration strings (ParseDuration); empty means none.
type Spec struct {
	Command         string            `json:"command"`
	Cwd             string            `json:"cwd,omitempty"`
	User            string            `json:"user,omitempty"`
	Env             map[string]string `json:"env,omitempty"`
	Timeout         string            `json:"timeout"`
	NoOutputTimeout string            `json:"no_output_timeout"`
	Kill            KillPolicy        `json:"kill"`
	Heartbeat       string            `json:"heartbeat"`
	// KeepChildren leaves processes the job left behind alive after its
	// main process exits. Not in the spec's example; unknown fields are
	// ignored by older wrappers, so adding it is compatible.
	KeepChildren bool `json:"keep_children,omitempty"`
}

// KillPolicy is the job's termination policy.
type KillPolicy struct {
	Signal string `json:"signal"`
	Grace  string `json:"grace"`
}

// Frame is every JSON frame of both dialects, in either direction. Numeric
// fields whose zero value is meaningful are pointers so that "absent" and
// "0" stay distinct; use Int and Int64 to fill them. A field added here
// is decoded by decodeFlat's setFlat too (TestDecodeFlatKnowsEveryField
// fails until it is).
type Frame struct {
	Type        string `json:"type"`
	JobName     string `json:"job_name,omitempty"`
	JobInstance string `json:"job_instance,omitempty"`
	Machine     string `json:"machine,omitempty"`
	Timestamp   string `json:"timestamp,omitempty"`

	// connect (and its ack)
	Protocol int    `json:"protocol,omitempty"`
	Token    string `json:"token,omitempty"`
	Version  string `json:"version,omitempty"`
	Resume   bool   `json:"resume,omitempty"`
	Session  string `json:"session,omitempty"`
	NextSeq  *int64 `json:"next_seq,omitempty"`
	Spec     *Spec  `json:"spec,omitempty"`

	// start
	PID int `json:"pid,omitempty"`

	// output, complete, ack of output
	Seq     *int64 `json:"seq,omitempty"`
	Stream  string `json:"stream,omitempty"`
	Data    string `json:"data,omitempty"`
	DataB64 []byte `json:"data_b64,omitempty"`

	// sync
	LastAckedSeq *int64 `json:"last_acked_seq,omitempty"`
	LastSeq      *int64 `json:"last_seq,omitempty"`

	// complete
	Retcode    *int   `json:"retcode,omitempty"`
	Reason     string `json:"reason,omitempty"`
	SignalName string `json:"signal_name,omitempty"`

	// error: Error is the human text (wrapper → core, and core → wrapper
	// beside Code); Code is the machine code (core → wrapper).
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`

	// kill, signal, killed
	Signal   string `json:"signal,omitempty"`
	Grace    string `json:"grace,omitempty"`
	PIDCount *int   `json:"pid_count,omitempty"`

	// ack, nack
	AckType     string `json:"ack_type,omitempty"`
	NackType    string `json:"nack_type,omitempty"`
	ExpectedSeq *int64 `json:"expected_seq,omitempty"`
	ReceivedSeq *int64 `json:"received_seq,omitempty"`
}

// Int returns a pointer to v, for Frame's optional fields.
func Int(v int) *int { return &v }

// Int64 returns a pointer to v, for Frame's optional fields.
func Int64(v int64) *int64 { return &v }

// ErrNoType is returned by Decode for a JSON object without a "type".
var ErrNoType = errors.New("frame has no type")

// Decode parses one JSON text frame. Unknown fields are ignored, as the
// spec asks; a frame that is not a JSON object or has no type is an error.
func Decode(data []byte) (Frame, error) {
	var f Frame
	if err := DecodeInto(data, &f); err != nil {
		return Frame{}, err
	}
	return f, nil
}

// DecodeInto is Decode into *f, which it overwrites, for a caller that
// keeps the frame in a struct of its own: a Frame is 400 bytes, and each
// copy of one is stack for the goroutine that decodes (a core's readers,
// one per wrapper). *f shares no memory with data, which the caller may
// reuse at once. On error *f is undefined.
func DecodeInto(data []byte, f *Frame) error {
	if !decodeFlat(data, f) {
		if err := decodeJSON(data, f); err != nil {
			return err
		}
	}
	if f.Type == "" {
		return ErrNoType
	}
	return nil
}

// decodeJSON decodes into *f through encoding/json, for the frames
// decodeFlat leaves to it. The frame it decodes into is its own, on the
// heap (encoding/json takes it as an interface): f, the caller's, stays
// where the caller has it.
//
//go:noinline
func decodeJSON(data []byte, f *Frame) error {
	var g Frame
	if err := json.Unmarshal(data, &g); err != nil {
		return fmt.Errorf("decode frame: %w", err)
	}
	*f = g
	return nil
}

// Encode renders a frame as JSON, as encoding/json would (appendFrame).
// It never fails; the error result is kept for its callers.
func Encode(f Frame) ([]byte, error) {
	return appendFrame(make([]byte, 0, 128+len(f.Data)+len(f.Error)), &f), nil
}

// Bytes returns the output bytes a JSON output frame carries: data_b64
// when present, else data.
func (f Frame) Bytes() []byte {
	if f.DataB64 != nil {
		return f.DataB64
	}
	return []byte(f.Data)
}

// SetBytes fills Data, or DataB64 when b is not valid UTF-8 (a JSON encoder
// would replace the invalid bytes and the stored output would differ from
// what the job wrote).
func (f *Frame) SetBytes(b []byte) {
	if utf8.Valid(b) {
		f.Data, f.DataB64 = string(b), nil
		return
	}
	f.Data, f.DataB64 = "", bytes.Clone(b)
}

// KnownType reports whether t is a frame type of either dialect.
func KnownType(t string) bool {
	switch t {
	case TypeConnect, TypeStart, TypeHeartbeat, TypeOutput, TypeSyncRequest,
		TypeComplete, TypeError, TypeKilled, TypeAck, TypeNack,
		TypeSyncResponse, TypeKill, TypeSignal:
		return true
	}
	return false
}

// ErrorFrame is the core's refusal: a code and a sentence.
func ErrorFrame(code, text string) Frame {
	return Frame{Type: TypeError, Code: code, Error: text}
}

// Ack acknowledges a frame of type t.
func Ack(t string) Frame { return Frame{Type: TypeAck, AckType: t} }

// AckOutput acknowledges output chunk seq.
func AckOutput(seq int64) Frame {
	return Frame{Type: TypeAck, AckType: TypeOutput, Seq: Int64(seq)}
}

// NackOutOfOrder tells the wrapper which seq the core expected.
func NackOutOfOrderFrame(expected, received int64) Frame {
	return Frame{Type: TypeNack, NackType: NackOutOfOrder,
		ExpectedSeq: Int64(expected), ReceivedSeq: Int64(received)}
}
