package wire

import (
	"strconv"
	"unicode/utf8"
)

// decodeFlat decodes, without encoding/json, the frames that are one flat
// JSON object of strings, integers and booleans: heartbeats, starts,
// completes, syncs, connects and v1 output of either dialect. They are most of
// what a core reads (an idle fleet's heartbeats above all), and
// encoding/json's reflection took a sixth of an idle core's CPU, 1 KB of
// garbage a frame and enough stack to double an idle connection's.
//
// It decides only where it decodes exactly as json.Unmarshal into a zero
// Frame would: false, with f undefined, for anything else (a \u escape or
// invalid UTF-8 in a string, an escape or a byte outside printable ASCII
// in a key, a float, null, an array or object, data_b64, a key that
// encoding/json would match to a field by folding its case, a number out
// of its field's range, a value of the wrong kind, bad syntax), and
// Decode falls back to encoding/json. The
// fuzz test FuzzDecodeFlat holds it to that.
func decodeFlat(data []byte, f *Frame) bool {
	p := flatParser{data: data}
	*f = Frame{}
	p.space()
	if !p.eat('{') {
		return false
	}
	p.space()
	if p.eat('}') {
		return p.end()
	}
	for {
		key, ok := p.str(true)
		if !ok {
			return false
		}
		p.space()
		if !p.eat(':') {
			return false
		}
		p.space()
		v, ok := p.value()
		if !ok || !f.setFlat(key, v) {
			return false
		}
		p.space()
		if p.eat('}') {
			return p.end()
		}
		if !p.eat(',') {
			return false
		}
		p.space()
	}
}

// flatParser reads data from i on.
type flatParser struct {
	data []byte
	i    int
}

// flatValue is one value of a flat object, as its JSON text: a string's
// contents (kind '"'), an integer's digits ('0'), true or false ('t').
type flatValue struct {
	kind byte
	text []byte
}

func (p *flatParser) space() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *flatParser) eat(c byte) bool {
	if p.i < len(p.data) && p.data[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end finishes the object: only white space may follow it.
func (p *flatParser) end() bool {
	p.space()
	return p.i == len(p.data)
}

// str reads a string: its contents as they are in data when they need
// no unescaping, else unescaped into a slice of their own. A key must be
// printable ASCII without escapes; a value may have the escapes of one
// character (not \u) and valid UTF-8.
func (p *flatParser) str(key bool) ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	seg := p.i // the start of the part not copied into buf yet
	var buf []byte
	ascii := true
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			s := p.data[seg:p.i]
			if buf != nil {
				s = append(buf, s...)
			}
			p.i++
			if !ascii && (key || !utf8.Valid(s)) {
				return nil, false
			}
			return s, true
		case c < 0x20:
			return nil, false
		case c >= 0x7f:
			ascii = false
		case c == '\\':
			if key || p.i+1 >= len(p.data) {
				return nil, false
			}
			var r byte
			switch e := p.data[p.i+1]; e {
			case '"', '\\', '/':
				r = e
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			default:
				return nil, false
			}
			buf = append(append(buf, p.data[seg:p.i]...), r)
			p.i += 2
			seg = p.i
			continue
		}
		p.i++
	}
	return nil, false
}

func (p *flatParser) value() (flatValue, bool) {
	if p.i >= len(p.data) {
		return flatValue{}, false
	}
	switch c := p.data[p.i]; {
	case c == '"':
		s, ok := p.str(false)
		return flatValue{'"', s}, ok
	case c == '-' || ('0' <= c && c <= '9'):
		return p.integer()
	case c == 't' || c == 'f':
		for _, lit := range []string{"true", "false"} {
			if end := p.i + len(lit); end <= len(p.data) && string(p.data[p.i:end]) == lit {
				v := flatValue{'t', p.data[p.i:end]}
				p.i = end
				return v, true
			}
		}
	}
	return flatValue{}, false
}

// integer reads -?(0|[1-9][0-9]*) not followed by a fraction or exponent.
func (p *flatParser) integer() (flatValue, bool) {
	start := p.i
	p.eat('-')
	switch {
	case p.eat('0'):
	case p.i < len(p.data) && '1' <= p.data[p.i] && p.data[p.i] <= '9':
		for p.i < len(p.data) && '0' <= p.data[p.i] && p.data[p.i] <= '9' {
			p.i++
		}
	default:
		return flatValue{}, false
	}
	if p.i < len(p.data) {
		switch p.data[p.i] {
		case '.', 'e', 'E':
			return flatValue{}, false
		}
	}
	return flatValue{'0', p.data[start:p.i]}, true
}

// setFlat sets the field named key to v; false where encoding/json would
// do otherwise than decodeFlat can (see decodeFlat). A key that is no
// field's is ignored, as encoding/json ignores it, unless it has an upper
// case letter: encoding/json matches keys to fields ignoring case.
func (f *Frame) setFlat(key []byte, v flatValue) bool {
	var s *string
	var i *int
	var i64 **int64
	var pi **int
	switch string(key) {
	case "type":
		s = &f.Type
	case "job_name":
		s = &f.JobName
	case "job_instance":
		s = &f.JobInstance
	case "machine":
		s = &f.Machine
	case "timestamp":
		s = &f.Timestamp
	case "protocol":
		i = &f.Protocol
	case "token":
		s = &f.Token
	case "version":
		s = &f.Version
	case "resume":
		if v.kind != 't' {
			return false
		}
		f.Resume = string(v.text) == "true"
		return true
	case "session":
		s = &f.Session
	case "next_seq":
		i64 = &f.NextSeq
	case "pid":
		i = &f.PID
	case "seq":
		i64 = &f.Seq
	case "stream":
		s = &f.Stream
	case "data":
		s = &f.Data
	case "last_acked_seq":
		i64 = &f.LastAckedSeq
	case "last_seq":
		i64 = &f.LastSeq
	case "retcode":
		pi = &f.Retcode
	case "reason":
		s = &f.Reason
	case "signal_name":
		s = &f.SignalName
	case "error":
		s = &f.Error
	case "code":
		s = &f.Code
	case "signal":
		s = &f.Signal
	case "grace":
		s = &f.Grace
	case "pid_count":
		pi = &f.PIDCount
	case "ack_type":
		s = &f.AckType
	case "nack_type":
		s = &f.NackType
	case "expected_seq":
		i64 = &f.ExpectedSeq
	case "received_seq":
		i64 = &f.ReceivedSeq
	case "spec", "data_b64":
		return false
	default:
		for _, c := range key {
			if 'A' <= c && c <= 'Z' {
				return false
			}
		}
		return true
	}
	switch {
	case s != nil:
		if v.kind != '"' {
			return false
		}
		*s = string(v.text)
	case i != nil || pi != nil:
		if v.kind != '0' {
			return false
		}
		n, err := strconv.ParseInt(string(v.text), 10, strconv.IntSize)
		if err != nil {
			return false
		}
		if i != nil {
			*i = int(n)
		} else {
			*pi = Int(int(n))
		}
	case i64 != nil:
		if v.kind != '0' {
			return false
		}
		n, err := strconv.ParseInt(string(v.text), 10, 64)
		if err != nil {
			return false
		}
		*i64 = Int64(n)
	}
	return true
}
