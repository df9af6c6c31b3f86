package wire

import (
	"encoding/base64"
	"slices"
	"strconv"
	"unicode/utf8"
)

// appendFrame appends f as encoding/json renders it, byte for byte: the
// fields in Frame's order, each omitted where its tag's omitempty omits
// it, strings escaped as encoding/json escapes them (HTML's <, > and &
// included), the spec's environment in the order of its keys. A wrapper
// lives for one run, and encoding/json's first use of a type (the
// reflection over Frame's fields that it then caches) cost more than the
// rest of its frames: 4.5% of a short run's wrapper CPU. FuzzEncode holds
// it to encoding/json's bytes.
func appendFrame(b []byte, f *Frame) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, f.Type)
	b = appendStringField(b, "job_name", f.JobName)
	b = appendStringField(b, "job_instance", f.JobInstance)
	b = appendStringField(b, "machine", f.Machine)
	b = appendStringField(b, "timestamp", f.Timestamp)
	if f.Protocol != 0 {
		b = appendIntField(b, "protocol", int64(f.Protocol))
	}
	b = appendStringField(b, "token", f.Token)
	b = appendStringField(b, "version", f.Version)
	if f.Resume {
		b = append(b, `,"resume":true`...)
	}
	b = appendStringField(b, "session", f.Session)
	b = appendInt64PtrField(b, "next_seq", f.NextSeq)
	if f.Spec != nil {
		b = append(b, `,"spec":`...)
		b = appendSpec(b, f.Spec)
	}
	if f.PID != 0 {
		b = appendIntField(b, "pid", int64(f.PID))
	}
	b = appendInt64PtrField(b, "seq", f.Seq)
	b = appendStringField(b, "stream", f.Stream)
	b = appendStringField(b, "data", f.Data)
	if len(f.DataB64) > 0 {
		b = append(b, `,"data_b64":"`...)
		b = base64.StdEncoding.AppendEncode(b, f.DataB64)
		b = append(b, '"')
	}
	b = appendInt64PtrField(b, "last_acked_seq", f.LastAckedSeq)
	b = appendInt64PtrField(b, "last_seq", f.LastSeq)
	b = appendIntPtrField(b, "retcode", f.Retcode)
	b = appendStringField(b, "reason", f.Reason)
	b = appendStringField(b, "signal_name", f.SignalName)
	b = appendStringField(b, "error", f.Error)
	b = appendStringField(b, "code", f.Code)
	b = appendStringField(b, "signal", f.Signal)
	b = appendStringField(b, "grace", f.Grace)
	b = appendIntPtrField(b, "pid_count", f.PIDCount)
	b = appendStringField(b, "ack_type", f.AckType)
	b = appendStringField(b, "nack_type", f.NackType)
	b = appendInt64PtrField(b, "expected_seq", f.ExpectedSeq)
	b = appendInt64PtrField(b, "received_seq", f.ReceivedSeq)
	return append(b, '}')
}

func appendSpec(b []byte, s *Spec) []byte {
	b = append(b, `{"command":`...)
	b = appendJSONString(b, s.Command)
	b = appendStringField(b, "cwd", s.Cwd)
	b = appendStringField(b, "user", s.User)
	if len(s.Env) > 0 {
		b = append(b, `,"env":{`...)
		keys := make([]string, 0, len(s.Env))
		for k := range s.Env {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, s.Env[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"timeout":`...)
	b = appendJSONString(b, s.Timeout)
	b = append(b, `,"no_output_timeout":`...)
	b = appendJSONString(b, s.NoOutputTimeout)
	b = append(b, `,"kill":{"signal":`...)
	b = appendJSONString(b, s.Kill.Signal)
	b = append(b, `,"grace":`...)
	b = appendJSONString(b, s.Kill.Grace)
	b = append(b, `},"heartbeat":`...)
	b = appendJSONString(b, s.Heartbeat)
	if s.KeepChildren {
		b = append(b, `,"keep_children":true`...)
	}
	return append(b, '}')
}

// appendStringField appends ,"name":"v" unless v is empty (omitempty).
func appendStringField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = appendKey(b, name)
	return appendJSONString(b, v)
}

func appendIntField(b []byte, name string, v int64) []byte {
	b = appendKey(b, name)
	return strconv.AppendInt(b, v, 10)
}

func appendInt64PtrField(b []byte, name string, v *int64) []byte {
	if v == nil {
		return b
	}
	return appendIntField(b, name, *v)
}

func appendIntPtrField(b []byte, name string, v *int) []byte {
	if v == nil {
		return b
	}
	return appendIntField(b, name, int64(*v))
}

// appendKey appends ,"name": for a name that needs no escaping.
func appendKey(b []byte, name string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json quotes a string:
// the short escapes for \b, \f, \n, \r, \t, \" and \\; \u00XX for the
// other control characters and for <, > and &; \ufffd for each byte of
// invalid UTF-8; \u2028 and \u2029 for the line and paragraph
// separators; everything else as it is.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
