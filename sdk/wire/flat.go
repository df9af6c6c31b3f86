package wire

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeFlat decodes, without encoding/json, the frames that are one flat
// JSON object of strings, integers and booleans: heartbeats, starts,
// completes, syncs, connects and v1 output of either dialect. They are most of
// what a core reads (an idle fleet's heartbeats above all), and
// encoding/json's reflection took a sixth of an idle core's CPU, 1 KB of
// garbage a frame and enough stack to double an idle connection's. It
// decodes the connect ack's spec too, the one object a frame holds: a
// wrapper lives for one run, and encoding/json's first use of Frame
// costs it more than all its other frames.
//
// It decides only where it decodes exactly as json.Unmarshal into a zero
// Frame would: false, with f undefined, for anything else (invalid UTF-8
// in a string, an escape or a byte outside printable ASCII in a key, a
// float, null, an array or an object but the spec, data_b64, a key that
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
	ok := p.object(true, func(key []byte) bool {
		if string(key) == "spec" {
			return p.spec(f)
		}
		v, ok := p.value()
		return ok && f.setFlat(key, v)
	})
	return ok && p.end()
}

// object reads the members of an object whose '{' was read, through its
// '}': for each, its key, then member with the parser at its value,
// which member reads. Keys are a struct's field names (fields: printable
// ASCII, no escapes, as str reads keys) or any string (a map's).
func (p *flatParser) object(fields bool, member func(key []byte) bool) bool {
	p.space()
	if p.eat('}') {
		return true
	}
	for {
		key, ok := p.str(fields)
		if !ok {
			return false
		}
		p.space()
		if !p.eat(':') {
			return false
		}
		p.space()
		if !member(key) {
			return false
		}
		p.space()
		if p.eat('}') {
			return true
		}
		if !p.eat(',') {
			return false
		}
		p.space()
	}
}

// spec reads the connect ack's spec into f.Spec, under decodeFlat's rule;
// besides, a second spec, env or kill is left to encoding/json, which
// would merge it into the first.
func (p *flatParser) spec(f *Frame) bool {
	if f.Spec != nil || !p.eat('{') {
		return false
	}
	s := &Spec{}
	f.Spec = s
	var env, kill bool
	return p.object(true, func(key []byte) bool {
		switch string(key) {
		case "env":
			if env || !p.eat('{') {
				return false
			}
			env = true
			s.Env = map[string]string{}
			// A name is the job's, not a field's: any string.
			return p.object(false, func(name []byte) bool {
				v, ok := p.value()
				if !ok || v.kind != '"' {
					return false
				}
				s.Env[string(name)] = string(v.text)
				return true
			})
		case "kill":
			if kill || !p.eat('{') {
				return false
			}
			kill = true
			return p.object(true, func(key []byte) bool {
				v, ok := p.value()
				if !ok {
					return false
				}
				switch string(key) {
				case "signal":
					return v.setString(&s.Kill.Signal)
				case "grace":
					return v.setString(&s.Kill.Grace)
				}
				return unknownKey(key)
			})
		}
		v, ok := p.value()
		if !ok {
			return false
		}
		switch string(key) {
		case "command":
			return v.setString(&s.Command)
		case "cwd":
			return v.setString(&s.Cwd)
		case "user":
			return v.setString(&s.User)
		case "timeout":
			return v.setString(&s.Timeout)
		case "no_output_timeout":
			return v.setString(&s.NoOutputTimeout)
		case "heartbeat":
			return v.setString(&s.Heartbeat)
		case "keep_children":
			if v.kind != 't' {
				return false
			}
			s.KeepChildren = string(v.text) == "true"
			return true
		}
		return unknownKey(key)
	})
}

// unknownKey is for a key that is no field's: encoding/json ignores it,
// unless it has an upper case letter, which it matches to fields
// ignoring case.
func unknownKey(key []byte) bool {
	for _, c := range key {
		if 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
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
// printable ASCII without escapes; a value may have any escape and valid
// UTF-8.
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
			case 'u':
				var ok bool
				if buf, ok = p.unicodeEscape(append(buf, p.data[seg:p.i]...)); !ok {
					return nil, false
				}
				seg = p.i
				continue
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

// unicodeEscape appends the character of the \u escape at i to buf and
// moves past it. encoding/json writes <, > and & so, and a command often
// has them. A surrogate pair is one character, a lone surrogate U+FFFD.
// Out of str's loop, which it would slow for every other string.
//
//go:noinline
func (p *flatParser) unicodeEscape(buf []byte) ([]byte, bool) {
	u, ok := p.hex4(p.i + 2)
	if !ok {
		return nil, false
	}
	p.i += 6
	if utf16.IsSurrogate(u) {
		u2, ok := rune(-1), false
		if p.i+1 < len(p.data) && p.data[p.i] == '\\' && p.data[p.i+1] == 'u' {
			u2, ok = p.hex4(p.i + 2)
		}
		if d := utf16.DecodeRune(u, u2); ok && d != utf8.RuneError {
			u = d
			p.i += 6
		} else {
			u = utf8.RuneError
		}
	}
	return utf8.AppendRune(buf, u), true
}

// hex4 reads the four hex digits at i, of a \u escape.
func (p *flatParser) hex4(i int) (rune, bool) {
	if i+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
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

// setString sets *s to a string value; false for a value of another kind.
func (v flatValue) setString(s *string) bool {
	if v.kind != '"' {
		return false
	}
	*s = string(v.text)
	return true
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
	named := false // a value from a short list (see name)
	switch string(key) {
	case "type":
		s, named = &f.Type, true
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
		s, named = &f.Stream, true
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
		s, named = &f.AckType, true
	case "nack_type":
		s, named = &f.NackType, true
	case "expected_seq":
		i64 = &f.ExpectedSeq
	case "received_seq":
		i64 = &f.ReceivedSeq
	case "spec", "data_b64":
		return false
	default:
		return unknownKey(key)
	}
	switch {
	case s != nil && named:
		if v.kind != '"' {
			return false
		}
		*s = name(v.text)
	case s != nil:
		return v.setString(s)
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

// name returns a frame type's or a stream's name as the constant that
// spells it, so that decoding one allocates nothing: every frame has a
// type, and an idle wrapper's heartbeats are most of a core's frames.
// Other text is copied.
func name(b []byte) string {
	switch string(b) {
	case TypeHeartbeat:
		return TypeHeartbeat
	case TypeOutput:
		return TypeOutput
	case TypeAck:
		return TypeAck
	case TypeStart:
		return TypeStart
	case TypeComplete:
		return TypeComplete
	case TypeConnect:
		return TypeConnect
	case TypeSyncRequest:
		return TypeSyncRequest
	case TypeSyncResponse:
		return TypeSyncResponse
	case TypeNack:
		return TypeNack
	case TypeError:
		return TypeError
	case TypeKilled:
		return TypeKilled
	case TypeKill:
		return TypeKill
	case TypeSignal:
		return TypeSignal
	case StreamStdout:
		return StreamStdout
	case StreamStderr:
		return StreamStderr
	case StreamSystem:
		return StreamSystem
	}
	return string(b)
}
