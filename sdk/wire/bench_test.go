package wire

import (
	"bytes"
	"testing"
)

// The frames a wrapper sends most, per run and per second of a run: the
// hot path of the hub's read loop and the wrapper's write loop. make test
// runs these once (-benchtime=1x) so that they keep compiling and
// running; make bench gives the figures.

var (
	heartbeatJSON = []byte(`{"type":"heartbeat","job_name":"backup","job_instance":"01JDZ6W3R2H9KX8M5T7QPN4B6C","machine":"web-0042.example.com","timestamp":"2026-11-26T09:00:00.123456Z"}`)
	outputJSON    = []byte(`{"type":"output","job_name":"backup","job_instance":"01JDZ6W3R2H9KX8M5T7QPN4B6C","machine":"web-0042.example.com","seq":1234,"stream":"stdout","data":"2026-11-26 09:00:00 copied 1234 files (56 MiB) to s3://backups/web-0042/\n"}`)
	completeJSON  = []byte(`{"type":"complete","job_name":"backup","job_instance":"01JDZ6W3R2H9KX8M5T7QPN4B6C","machine":"web-0042.example.com","retcode":0,"reason":"exit","last_seq":1234}`)
)

func BenchmarkDecode(b *testing.B) {
	for _, bm := range []struct {
		name  string
		frame []byte
	}{{"heartbeat", heartbeatJSON}, {"output", outputJSON}, {"complete", completeJSON}} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.frame)))
			for b.Loop() {
				if _, err := Decode(bm.frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeAck(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(AckOutput(1234)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBinaryOutput is the v2 binary output frame both ways, at the
// wrapper's usual chunk size.
func BenchmarkBinaryOutput(b *testing.B) {
	data := bytes.Repeat([]byte("copied 1234 files\n"), 4096/18)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := EncodeBinaryOutput(StreamStdout, 1234, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	frame, err := EncodeBinaryOutput(StreamStdout, 1234, data)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, _, _, err := DecodeBinaryOutput(frame); err != nil {
				b.Fatal(err)
			}
		}
	})
}
