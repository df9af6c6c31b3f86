package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// encodeFrames are frames whose encoding must be encoding/json's, beside
// every frame of flatFrames decoded.
var encodeFrames = []Frame{
	{},
	{Type: TypeHeartbeat},
	AckOutput(1234),
	{Type: TypeComplete, Retcode: Int(-1), Reason: "signal", SignalName: "SIGKILL", LastSeq: Int64(0)},
	{Type: TypeOutput, Seq: Int64(-9), Stream: StreamStdout, Data: "<a href=\"x\">&amp;</a>\\\b\f\n\r\t\x00\x1f\x7f"},
	{Type: TypeOutput, Data: "caf\xc3\xa9 \xff\xfe half \xe2\x82 line\u2028para\u2029 😀"},
	{Type: TypeOutput, DataB64: []byte{0, 0xff, 0xfe, 1}},
	{Type: TypeOutput, DataB64: []byte{}},
	{Type: TypeAck, AckType: TypeConnect, Session: "s", NextSeq: Int64(0), Spec: &Spec{}},
	{Type: TypeAck, AckType: TypeConnect, Spec: &Spec{
		Command: "echo \"$HOME\" > /tmp/x && true", Cwd: "/var/<tmp>", User: "backup",
		Env:     map[string]string{"Z": "1", "A": "<2>", "é": "x\ny", "": "empty key", "b": ""},
		Timeout: "2h", NoOutputTimeout: "", Kill: KillPolicy{Signal: "SIGTERM", Grace: "5s"},
		Heartbeat: "5s", KeepChildren: true,
	}},
	{Type: TypeAck, Spec: &Spec{Env: map[string]string{}}},
	{Type: TypeConnect, Protocol: 2, Token: "t", Version: "v", Resume: true, Machine: "m", PID: -3},
	{Type: TypeKilled, Signal: "SIGTERM", Grace: "1s", PIDCount: Int(0)},
	{Type: TypeNack, NackType: TypeOutput, ExpectedSeq: Int64(1 << 62), ReceivedSeq: Int64(-1 << 63)},
	{Type: TypeError, Error: "bad", Code: "refused"},
}

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	frames := append([]Frame(nil), encodeFrames...)
	for _, data := range flatFrames {
		f, err := Decode([]byte(data))
		if err != nil {
			continue // {} has no type
		}
		frames = append(frames, f)
	}
	for _, f := range frames {
		assertEncodesAsJSON(t, f)
	}
}

// TestEncodeKnowsEveryField: a frame with every field of Frame and of
// Spec set encodes as encoding/json encodes it. A field added to either
// and not to appendFrame fails here.
func TestEncodeKnowsEveryField(t *testing.T) {
	var f Frame
	fillEveryField(t, reflect.ValueOf(&f).Elem())
	if f.Spec == nil || f.Spec.Env == nil {
		t.Fatal("the spec was not filled")
	}
	assertEncodesAsJSON(t, f)
}

// fillEveryField sets every field of the struct v to a value that is not
// its zero value, following pointers to structs.
func fillEveryField(t *testing.T, v reflect.Value) {
	t.Helper()
	for i := range v.NumField() {
		fv := v.Field(i)
		switch fv.Kind() {
		case reflect.String:
			fv.SetString(v.Type().Field(i).Name + " <value>")
		case reflect.Bool:
			fv.SetBool(true)
		case reflect.Int, reflect.Int64:
			fv.SetInt(int64(i) + 1)
		case reflect.Slice:
			fv.SetBytes([]byte{byte(i), 0xff})
		case reflect.Map:
			fv.Set(reflect.ValueOf(map[string]string{"K": "v", "A": "w"}))
		case reflect.Pointer:
			fv.Set(reflect.New(fv.Type().Elem()))
			if fv.Elem().Kind() == reflect.Struct {
				fillEveryField(t, fv.Elem())
			} else {
				fv.Elem().SetInt(int64(i) + 1)
			}
		case reflect.Struct:
			fillEveryField(t, fv)
		default:
			t.Fatalf("field %s: kind %s not filled", v.Type().Field(i).Name, fv.Kind())
		}
	}
}

func assertEncodesAsJSON(t *testing.T, f Frame) {
	t.Helper()
	want, err := json.Marshal(f)
	if err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	got, err := Encode(f)
	if err != nil {
		t.Fatalf("Encode %+v: %v", f, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Encode %+v:\n got %s\nwant %s", f, got, want)
	}
}

// FuzzEncode: Encode writes what encoding/json writes, whatever the
// strings, numbers and bytes, and whichever fields are set.
func FuzzEncode(f *testing.F) {
	f.Add("heartbeat", "", "", int64(0), []byte(nil), uint32(0))
	f.Add("output", "line\n<&>", "\xff\u2028", int64(-1), []byte("x"), uint32(0xffffffff))
	f.Add("ack", "é", "\x00", int64(1<<40), []byte{}, uint32(0x5555))
	f.Fuzz(func(t *testing.T, typ, s1, s2 string, n int64, data []byte, set uint32) {
		on := func(bit int) bool { return set&(1<<bit) != 0 }
		str := func(bit int) string {
			if on(bit) {
				return s1
			}
			return s2
		}
		i64 := func(bit int) *int64 {
			if on(bit) {
				return Int64(n)
			}
			return nil
		}
		fr := Frame{
			Type: typ, JobName: str(0), JobInstance: str(1), Machine: s1, Timestamp: str(2),
			Protocol: int(n), Token: str(3), Version: s2, Resume: on(4), Session: str(5),
			NextSeq: i64(6), PID: int(n >> 1), Seq: i64(7), Stream: str(8), Data: s1 + s2,
			DataB64: data, LastAckedSeq: i64(9), LastSeq: i64(10), Reason: str(11),
			SignalName: str(12), Error: s2, Code: str(13), Signal: str(14), Grace: str(15),
			AckType: str(16), NackType: str(17), ExpectedSeq: i64(18), ReceivedSeq: i64(19),
		}
		if on(20) {
			fr.Retcode = Int(int(n))
		}
		if on(21) {
			fr.PIDCount = Int(int(-n))
		}
		if on(22) {
			fr.Spec = &Spec{
				Command: s1, Cwd: str(23), User: str(24), Timeout: s2, NoOutputTimeout: str(25),
				Kill: KillPolicy{Signal: s2, Grace: str(26)}, Heartbeat: s1, KeepChildren: on(27),
			}
			if on(28) {
				fr.Spec.Env = map[string]string{s1: s2, s2: str(29), typ: s1}
			}
		}
		assertEncodesAsJSON(t, fr)
		// What a wrapper or core sends, the other decodes without
		// encoding/json, but for bytes that are not text.
		if len(data) == 0 && utf8.ValidString(typ+s1+s2) {
			b, _ := Encode(fr)
			var back Frame
			if !decodeFlat(b, &back) {
				t.Fatalf("decodeFlat left %s, which Encode wrote, to encoding/json", b)
			}
		}
	})
}
