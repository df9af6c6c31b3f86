package wire

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// flatFrames are frames decodeFlat must decode itself: what wrappers of
// both dialects send most. If one of them fell back to encoding/json the
// frames would still decode, only slower, which no other test would see.
var flatFrames = []string{
	`{"type":"heartbeat"}`,
	string(heartbeatJSON),
	string(completeJSON),
	`{"type": "heartbeat", "job_name": "backup", "job_instance": "r1", "machine": "web-1", "timestamp": "2026-11-26T09:00:00Z"}`,
	`{"type":"start","pid":4242,"version":"v1.2.3"}`,
	`{"type":"complete","retcode":-1,"reason":"signal","signal_name":"SIGKILL","seq":12}`,
	`{"type":"connect","protocol":2,"token":"tok","resume":true,"session":"s","next_seq":0,"machine":"m","job_instance":"r"}`,
	`{"type":"sync_request","last_acked_seq":-1,"next_seq":7}`,
	"\t{ \"type\" : \"killed\" ,\r\n \"signal\":\"SIGTERM\", \"pid_count\": 3, \"resume\": false }\n",
	`{"type":"heartbeat","extra":"x","more":12,"flag":true}`,
	`{"type":"heartbeat","type":"start"}`,
	`{"type":"output","seq":0,"stream":"stdout","data":"plain text"}`,
	`{"type":"output","seq":1,"stream":"stderr","data":"line\n\t\"quoted\" \\ \/ \b\f\r"}`,
	"{\"type\":\"output\",\"seq\":1,\"stream\":\"stdout\",\"data\":\"caf\xc3\xa9 \x7f\"}",
	string(outputJSON),
	`{}`,
	`{"type":"output","seq":1,"stream":"stdout","data":"caf\u00e9 \u003c\u003E\u0026 \u0000 \ud83d\ude00 \ud83d \ude00 \ud83d\u0041 \uDBFF\uDFFF"}`,
	`{"type":"connect","spec":{"command":"true"}}`,
	`{"type":"ack","spec":{}}`,
	`{"type":"ack","spec":{"env":{"caf\u00e9 \"q\"":"x","\ud83d":"y"}}}`,
	`{"type":"ack","ack_type":"connect","session":"s1","next_seq":0,"spec":{"command":"echo \"$X\" \u003e /tmp/y","cwd":"/","user":"u","env":{"A":"1","cafÃ©":"x\ny","":""},"timeout":"2h","no_output_timeout":"","kill":{"signal":"SIGTERM","grace":"5s"},"heartbeat":"5s","keep_children":true}}`,
	` { "type" : "ack" , "spec" : { "env" : { } , "kill" : { } , "extra" : 1 , "more" : "x" , "kill_" : true } } `,
	`{"type":"ack","spec":{"command":"a","command":"b","keep_children":true,"keep_children":false,"env":{"A":"1","A":"2"}}}`,
}

// notFlatFrames are left to encoding/json: decodeFlat cannot decode them
// exactly as it does.
var notFlatFrames = []string{
	"{\"type\":\"output\",\"seq\":1,\"stream\":\"stdout\",\"data\":\"bad \xff byte\"}",
	`{"type":"output","data":"bad \u00zz escape"}`,
	`{"type":"output","data":"short \u00e"}`,
	"{\"type\":\"output\",\"seq\":1,\"stream\":\"stdout\",\"data\":\"raw\ttab\"}",
	`{"ty\/pe":"heartbeat"}`,
	"{\"caf\xc3\xa9\":\"heartbeat\"}",
	`{"type":"output","data":"bad \q escape"}`,
	`{"type":"output","seq":1,"stream":"stdout","data_b64":"/w=="}`,
	`{"type":"connect","spec":{"Command":"true"}}`,
	`{"type":"ack","spec":null}`,
	`{"type":"ack","spec":{"command":"a"},"spec":{"cwd":"b"}}`,
	`{"type":"ack","spec":{"env":{"A":"1"},"env":{"B":"2"}}}`,
	`{"type":"ack","spec":{"kill":{"signal":"SIGTERM"},"kill":{"grace":"1s"}}}`,
	`{"type":"ack","spec":{"env":{"A":null}}}`,
	`{"type":"ack","spec":{"env":{"A":1}}}`,
	`{"type":"ack","spec":{"env":null}}`,
	`{"type":"ack","spec":{"kill":null}}`,
	`{"type":"ack","spec":{"kill":{"Signal":"x"}}}`,
	`{"type":"ack","spec":{"command":1}}`,
	`{"type":"ack","spec":{"keep_children":"true"}}`,
	`{"type":"ack","spec":{"extra":{"x":1}}}`,
	`{"type":"ack","spec":{"command":"a"}`,
	`{"type":"ack","spec":{"command":"a",}}`,
	`{"type":"ack","spec":[]}`,
	`{"Type":"heartbeat"}`,
	`{"type":"heartbeat","Unknown":1}`,
	`{"type":"complete","retcode":1.0}`,
	`{"type":"complete","retcode":1e2}`,
	`{"type":"complete","retcode":null}`,
	`{"type":"complete","seq":99999999999999999999}`,
	`{"type":1}`,
	`{"type":"start","pid":"12"}`,
	`{"type":"heartbeat","x":[1]}`,
	`{"type":"heartbeat"} x`,
	`{"type":"heartbeat",}`,
	`{"type":"heartbeat"`,
	`{"type":"complete","retcode":01}`,
	`{"type":"connect","resume":"true"}`,
	`null`,
	`[]`,
	``,
}

func TestDecodeFlat(t *testing.T) {
	for _, data := range flatFrames {
		var want Frame
		got := Frame{Type: "left over", Seq: Int64(7), Resume: true} // decodeFlat starts from a zero frame
		if !decodeFlat([]byte(data), &got) {
			t.Errorf("decodeFlat left %s to encoding/json", data)
			continue
		}
		if err := json.Unmarshal([]byte(data), &want); err != nil {
			t.Fatalf("encoding/json refuses %s: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decodeFlat %+v, encoding/json %+v", data, got, want)
		}
	}
	for _, data := range notFlatFrames {
		var f Frame
		if decodeFlat([]byte(data), &f) {
			t.Errorf("decodeFlat decoded %s itself, as %+v", data, f)
		}
	}
}

// FuzzDecodeFlat: whatever decodeFlat decodes, encoding/json decodes too,
// to the same frame.
func FuzzDecodeFlat(f *testing.F) {
	for _, s := range flatFrames {
		f.Add([]byte(s))
	}
	for _, s := range notFlatFrames {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := Frame{Type: "left over", Seq: Int64(7), Resume: true} // decodeFlat starts from a zero frame
		if !decodeFlat(data, &got) {
			return
		}
		var want Frame
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("decodeFlat decoded %q, which encoding/json refuses: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decodeFlat %+v, encoding/json %+v", data, got, want)
		}
	})
}

// TestDecodeFlatKnowsEveryField: every field of Frame is decoded by
// decodeFlat or left to encoding/json. A field added to Frame and not to
// setFlat would be read as an unknown key and dropped.
func TestDecodeFlatKnowsEveryField(t *testing.T) {
	ft := reflect.TypeFor[Frame]()
	for i := range ft.NumField() {
		field := ft.Field(i)
		name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			t.Fatalf("field %s has no JSON name", field.Name)
		}
		var value string
		switch k := field.Type.Kind(); {
		case k == reflect.String:
			value = `"v"`
		case k == reflect.Bool:
			value = `true`
		case k == reflect.Int || (k == reflect.Pointer && field.Type.Elem().Kind() == reflect.Int) ||
			(k == reflect.Pointer && field.Type.Elem().Kind() == reflect.Int64):
			value = `7`
		default:
			value = `{}` // not flat: left to encoding/json
		}
		data := `{"type":"x","` + name + `":` + value + `}`
		if name == "type" {
			data = `{"type":"v"}`
		}
		var f Frame
		if !decodeFlat([]byte(data), &f) {
			if value != `{}` {
				t.Errorf("decodeFlat left %s to encoding/json", data)
			}
			continue
		}
		if reflect.ValueOf(f).Field(i).IsZero() {
			t.Errorf("decodeFlat dropped field %s (%q) of %s", field.Name, name, data)
		}
	}
}

// TestDecodeIntoSharesNothing holds DecodeInto to its word that the frame
// shares no memory with the bytes it was decoded from: the core reads
// frames into pooled buffers and hands a buffer on as soon as a text
// frame is decoded. Every frame is decoded, its bytes overwritten, and
// the frame compared with one decoded from a copy.
func TestDecodeIntoSharesNothing(t *testing.T) {
	frames := append(append([]string{
		`{"type":"nack","nack_type":"output","expected_seq":3,"received_seq":5}`,
		`{"type":"ack","ack_type":"output","seq":9}`,
		`{"type":"output","seq":2,"stream":"system","data":"x"}`,
		`{"type":"novel","stream":"novel"}`,
	}, flatFrames...), notFlatFrames...)
	for _, text := range frames {
		want, err := Decode([]byte(text))
		if err != nil {
			continue // a frame that does not decode has nothing to share
		}
		b := []byte(text)
		var got Frame
		if err := DecodeInto(b, &got); err != nil {
			t.Fatalf("%s: DecodeInto failed where Decode did not: %v", text, err)
		}
		for i := range b {
			b[i] = 'x'
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: changed with the bytes it was decoded from:\n got %+v\nwant %+v", text, got, want)
		}
	}
}
