package wrapper

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// End-to-end runs: the wrapper in this process, real jobs through
// wrapper/proc, the fake core on the other end.

func shellSpec(cmd string) wire.Spec {
	return wire.Spec{Command: cmd, Env: map[string]string{"PGHOST": "db1"}, Heartbeat: "1s",
		Kill: wire.KillPolicy{Signal: "SIGTERM", Grace: "2s"}}
}

func TestE2EOutputAndExit(t *testing.T) {
	big := randomBytes(3<<20+7, 9)
	file := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(file, big, 0o600); err != nil {
		t.Fatal(err)
	}
	core := newFakeCore(t, shellSpec(`printf 'a\377b\n'; cat '`+file+`'; echo "pg=$PGHOST"; `+
		`printf 'token=%s\n' "${SP_TOKEN-unset}" >&2; exit 3`))
	rn := startRun(t, core, nil, nil)
	f := core.awaitComplete(t)
	rn.mustSucceed(t)

	checkComplete(t, f, 3, wire.ReasonExit)
	want := append(append([]byte("a\xffb\n"), big...), "pg=db1\n"...)
	if got := core.output(wire.StreamStdout); !bytes.Equal(got, want) {
		t.Errorf("stdout: %d bytes, want %d; equal prefix %d", len(got), len(want), commonPrefix(got, want))
	}
	if got := string(core.output(wire.StreamStderr)); got != "token=unset\n" {
		t.Errorf("stderr = %q: the job must not see SP_TOKEN", got)
	}
	if starts := core.framesOf(wire.TypeStart); len(starts) != 1 || starts[0].PID <= 1 {
		t.Errorf("start frames %+v", starts)
	}
}

func TestE2EKill(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cmd     string
		grace   string
		sigkill bool // the tree ignores SIGTERM: SIGKILL after the grace
	}{
		{"obeys SIGTERM", `echo ready; exec sleep 30`, "5s", false},
		{"ignores SIGTERM", `trap '' TERM; sleep 30 & echo ready; wait`, "300ms", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core := newFakeCore(t, shellSpec(tc.cmd))
			rn := startRun(t, core, nil, nil)
			core.await(t, "ready", func() bool { return len(core.chunks) > 0 })
			core.send(t, wire.Frame{Type: wire.TypeKill, Grace: tc.grace})
			f := core.awaitComplete(t)
			rn.mustSucceed(t)

			checkComplete(t, f, wire.ExitKilled, wire.ReasonKilled)
			killed := core.framesOf(wire.TypeKilled)
			if len(killed) == 0 || killed[0].Signal != "SIGTERM" || killed[0].PIDCount == nil || *killed[0].PIDCount < 1 {
				t.Errorf("killed frames %+v", killed)
			}
			sys := string(core.output(wire.StreamSystem))
			if !strings.HasPrefix(sys, "[Job terminated by user request]\n") {
				t.Errorf("system stream %q", sys)
			}
			if got := strings.Contains(sys, "killed with SIGKILL"); got != tc.sigkill {
				t.Errorf("system stream %q: SIGKILL noted %v, want %v", sys, got, tc.sigkill)
			}
		})
	}
}

func TestE2ETimeout(t *testing.T) {
	spec := shellSpec(`echo started; sleep 30`)
	spec.Timeout = "300ms"
	core := newFakeCore(t, spec)
	rn := startRun(t, core, nil, nil)
	f := core.awaitComplete(t)
	rn.mustSucceed(t)
	checkComplete(t, f, wire.ExitTimeout, wire.ReasonTimeout)
	if sys := string(core.output(wire.StreamSystem)); sys != "[Job exceeded timeout of 300ms]\n" {
		t.Errorf("system stream %q", sys)
	}
}

func TestE2EStartFailure(t *testing.T) {
	spec := shellSpec("true")
	spec.Cwd = "/nonexistent/saltpeter"
	core := newFakeCore(t, spec)
	rn := startRun(t, core, nil, nil)
	f := core.awaitComplete(t)
	rn.mustSucceed(t)
	checkComplete(t, f, wire.ExitError, "")
	errs := core.framesOf(wire.TypeError)
	// proc's error says "no such file or directory" without naming the
	// cwd; the text is proc's to improve.
	if len(errs) != 1 || !strings.Contains(errs[0].Error, "no such file or directory") {
		t.Errorf("error frames %+v, want one saying why", errs)
	}
	if len(core.framesOf(wire.TypeStart)) != 0 {
		t.Error("start sent for a job that never started")
	}
}

func TestE2ESignalDeath(t *testing.T) {
	core := newFakeCore(t, shellSpec(`kill -SEGV $$`))
	rn := startRun(t, core, nil, nil)
	f := core.awaitComplete(t)
	rn.mustSucceed(t)
	checkComplete(t, f, 128+11, wire.ReasonSignal)
	if f.SignalName != "SIGSEGV" {
		t.Errorf("signal_name = %q", f.SignalName)
	}
}

func TestE2ESignalCommand(t *testing.T) {
	core := newFakeCore(t, shellSpec(`trap 'echo got-hup' HUP; echo ready; while :; do sleep 0.05; done`))
	rn := startRun(t, core, nil, nil)
	core.await(t, "ready", func() bool { return len(core.chunks) > 0 })
	core.send(t, wire.Frame{Type: wire.TypeSignal, Signal: "SIGHUP"})
	core.await(t, "the job's trap", func() bool {
		var b bytes.Buffer
		for _, c := range core.chunks {
			b.Write(c.data)
		}
		return strings.Contains(b.String(), "got-hup")
	})
	core.await(t, "killed", func() bool { return len(core.framesOfLocked(wire.TypeKilled)) > 0 })
	killed := core.framesOf(wire.TypeKilled)
	if len(killed) != 1 || killed[0].Signal != "SIGHUP" || *killed[0].PIDCount < 1 {
		t.Errorf("killed frames %+v", killed)
	}
	core.send(t, wire.Frame{Type: wire.TypeKill})
	checkComplete(t, core.awaitComplete(t), wire.ExitKilled, wire.ReasonKilled)
	rn.mustSucceed(t)
}

func TestE2ELeftovers(t *testing.T) {
	core := newFakeCore(t, shellSpec(`sleep 30 & echo "bg=$!"`))
	rn := startRun(t, core, nil, nil)
	f := core.awaitComplete(t)
	rn.mustSucceed(t)
	checkComplete(t, f, 0, wire.ReasonExit)
	bg := strings.TrimSpace(strings.TrimPrefix(string(core.output(wire.StreamStdout)), "bg="))
	sys := string(core.output(wire.StreamSystem))
	if !strings.Contains(sys, "[Job left 1 processes running after it exited: "+bg+"; terminating them]") {
		t.Errorf("system stream %q, want the leftover %s noted", sys, bg)
	}
	if _, err := os.Stat("/proc/" + bg); err == nil {
		if stat, _ := os.ReadFile("/proc/" + bg + "/stat"); !strings.Contains(string(stat), ") Z") {
			t.Errorf("leftover %s still alive: %s", bg, stat)
		}
	}
}
