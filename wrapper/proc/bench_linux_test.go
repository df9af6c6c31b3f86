//go:build linux

package proc_test

import (
	"bufio"
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/wrapper/proc"
)

// BenchmarkTerminate measures the kill policy on a small tree that honours
// SIGTERM (a shell loop and its sleep): from the signal to nothing left,
// in each tree-tracking mode.
func BenchmarkTerminate(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				j, err := proc.Start(proc.Options{Command: "echo ready; while :; do sleep 0.2; done",
					Env: []string{"PATH=/usr/bin:/bin"}, DisableCgroup: m.disableCgroup})
				if err != nil {
					b.Fatal(err)
				}
				if m.name == proc.ModeCgroup && j.Mode() != proc.ModeCgroup {
					b.Skip("no cgroup here")
				}
				if _, err := bufio.NewReader(j.Stdout()).ReadString('\n'); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res := j.Terminate(context.Background(), syscall.SIGTERM, 5*time.Second)
				b.StopTimer()
				if len(res.Killed) > 0 || len(j.Alive()) > 0 {
					b.Fatalf("tree needed SIGKILL or survived: %+v", res)
				}
				j.Stdout().Close()
				j.Stderr().Close()
				_ = j.Close()
			}
		})
	}
}
