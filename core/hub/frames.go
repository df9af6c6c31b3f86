package hub

import (
	"errors"
	"fmt"

	"github.com/gorilla/websocket"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// inKind is what a received websocket message is to the hub.
type inKind int

const (
	inControl  inKind = iota // a JSON frame of a known wrapper → core type
	inOutput                 // an output chunk, JSON or binary
	inBad                    // not a frame, or a frame missing what its type needs
	inTooLarge               // larger than wire.MaxFrameBytes
	inUnknown                // a JSON frame of a type no dialect has
	inIgnored                // a core → wrapper type sent to the core
)

func (k inKind) String() string {
	switch k {
	case inControl:
		return "control"
	case inOutput:
		return "output"
	case inBad:
		return "bad"
	case inTooLarge:
		return "too_large"
	case inUnknown:
		return "unknown"
	case inIgnored:
		return "ignored"
	}
	return fmt.Sprintf("inKind(%d)", int(k))
}

// inbound is one classified message.
type inbound struct {
	kind inKind
	// frame is the decoded JSON frame (zero for a binary frame).
	frame wire.Frame
	// binary is set for a v2 binary output frame.
	binary bool
	// stream, seq and data are an output chunk's (inOutput).
	stream string
	seq    int64
	data   []byte
	// buf, when set, is the pooled buffer data points into, for the hub
	// to give back once the chunk is stored (see recycle).
	buf *[]byte
	// held is the memory the frame holds while queued: its buffer's
	// size, or its data's (see queueBytes).
	held int
	// err says what is wrong (inBad, inTooLarge).
	err error
}

var (
	errNoSeq     = errors.New("output frame without a valid seq")
	errBadStream = errors.New("output frame with an unknown stream")
	errNoRetcode = errors.New("complete frame without retcode")
	errMsgType   = errors.New("neither a text nor a binary message")
)

// classify turns one websocket message into what the hub acts on, in
// *in, which it overwrites: the reader's own, so that no copy of one is
// on its stack (see DecodeInto). It is pure, so it is fuzzed on its own.
func classify(msgType int, data []byte, in *inbound) {
	*in = inbound{}
	if len(data) > wire.MaxFrameBytes {
		in.kind, in.err = inTooLarge, fmt.Errorf("frame of more than %d bytes", wire.MaxFrameBytes)
		return
	}
	switch msgType {
	case websocket.BinaryMessage:
		stream, seq, b, err := wire.DecodeBinaryOutput(data)
		if err != nil {
			in.kind, in.err = inBad, err
			return
		}
		in.kind, in.binary, in.stream, in.seq, in.data = inOutput, true, stream, seq, b
		return
	case websocket.TextMessage:
	default:
		in.kind, in.err = inBad, errMsgType
		return
	}
	f := &in.frame
	if err := wire.DecodeInto(data, f); err != nil {
		*in = inbound{kind: inBad, err: err}
		return
	}
	in.kind = inControl
	switch f.Type {
	case wire.TypeOutput:
		if f.Seq == nil || *f.Seq < 0 {
			in.kind, in.err = inBad, errNoSeq
			return
		}
		if _, ok := wire.StreamCode(f.Stream); !ok {
			in.kind, in.err = inBad, errBadStream
			return
		}
		in.kind, in.stream, in.seq, in.data = inOutput, f.Stream, *f.Seq, f.Bytes()
	case wire.TypeComplete:
		if f.Retcode == nil {
			in.kind, in.err = inBad, errNoRetcode
		}
	case wire.TypeConnect, wire.TypeStart, wire.TypeHeartbeat, wire.TypeSyncRequest,
		wire.TypeError, wire.TypeKilled:
	case wire.TypeAck, wire.TypeNack, wire.TypeSyncResponse, wire.TypeKill, wire.TypeSignal:
		in.kind = inIgnored
	default:
		in.kind = inUnknown
	}
}

// v2Connect reports whether a connect frame is a v2 one (it asks for
// protocol 2 or carries a credential).
func v2Connect(f wire.Frame) bool {
	return f.Type == wire.TypeConnect &&
		(f.Protocol >= wire.ProtocolV2 || f.Token != "" || f.Session != "" || f.Resume)
}

// outcome maps a complete frame to the machine's status and reason.
// killSent and timedOut are what the hub knows, for frames without a
// reason (v1).
func outcome(f wire.Frame, killSent, timedOut bool) (status, reason string) {
	code := 0
	if f.Retcode != nil {
		code = *f.Retcode
	}
	reason = f.Reason
	if reason == "" {
		switch {
		case killSent:
			reason = wire.ReasonKilled
		case timedOut:
			reason = wire.ReasonTimeout
		default:
			reason = wire.ReasonExit
		}
	}
	switch reason {
	case wire.ReasonKilled:
		return store.StatusKilled, reason
	case wire.ReasonTimeout, wire.ReasonNoOutputTimeout:
		return store.StatusTimeout, reason
	case wire.ReasonSignal:
		return store.StatusFailed, reason
	}
	// exit, and reasons this core does not know: by the exit code.
	if code == 0 {
		return store.StatusSucceeded, reason
	}
	return store.StatusFailed, reason
}
