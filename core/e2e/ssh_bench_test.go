package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/saltpeter/saltpeter/plugins/ssh/sshtest"
)

// BenchmarkSSHDispatch200 fires one run of a job on 200 machines through
// the ssh target: 200 machine ids (127.0.0.2 to 127.0.0.201, all loopback)
// of one real sshd, and measures from the run's start to the last of the
// 200 wrappers' start messages. Beside it, in the same run, sequential
// `ssh host true` calls with OpenSSH's client, as the time 200 of them
// take (measured on 20): what a loop over the hosts would cost. It also
// reports the CPU the core and its ssh and store plugins spent per
// machine.
//
// The 200 "hosts" share this machine's CPUs, so the fan-out is bounded by
// the remote work of 200 logins and wrapper starts, which on a real fleet
// each host does on its own. The harness gives sessions a HOME of its own
// (sshtest.Server.Home): a developer's .bashrc would otherwise dominate
// both figures (the sandbox's, which runs pyenv's init and rehash, costs
// about 1.2 s of CPU a login and makes concurrent logins queue on its
// lock).
func BenchmarkSSHDispatch200(b *testing.B) {
	const machines = 200
	srv := sshtest.Start(b, "ListenAddress 0.0.0.0")
	var hosts, lines []string
	for i := range machines {
		h := fmt.Sprintf("127.0.0.%d:%d", i+2, srv.Port)
		hosts = append(hosts, h)
		lines = append(lines, knownhosts.Line([]string{knownhosts.Normalize(h)}, srv.HostKey))
	}
	known := filepath.Join(b.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	// 200 wrappers start on two CPUs here: generous deadlines.
	c := startCore(b, `core {
  listen             = "127.0.0.1:0"
  heartbeat_interval = "1s"
  heartbeat_timeout  = "30s"
  connect_deadline   = "5m"
}
`+fmt.Sprintf(`
plugin "target" "ssh" {
  config {
    user        = %q
    key_file    = %q
    known_hosts = %q
  }
}
`, srv.User, srv.KeyFile, known)+sshJob("fleet", "true", hosts))

	corePID := c.cmd.Process.Pid
	var fan, cpu time.Duration
	for i := 0; i < b.N; i++ {
		// The ssh plugin starts with the first dispatch: its CPU is then
		// all this run's.
		var ssh0 time.Duration
		if i > 0 {
			ssh0 = procCPU(b, pluginOf(b, corePID, "target\x00ssh"))
		}
		ours := func() time.Duration { return procCPU(b, corePID) + procCPU(b, pluginOf(b, corePID, "store")) }
		cpu0 := ours()
		id := c.runNow("fleet")
		r := c.waitFinal(id, 10*time.Minute)
		if r.Status != "succeeded" || len(r.Machines) != machines {
			b.Fatalf("run %s on %d machines, want succeeded on %d", r.Status, len(r.Machines), machines)
		}
		var last time.Time
		for _, m := range r.Machines {
			if m.StartedAt.After(last) {
				last = m.StartedAt
			}
		}
		fan += last.Sub(r.StartedAt)
		cpu += ours() - cpu0 + procCPU(b, pluginOf(b, corePID, "target\x00ssh")) - ssh0
	}

	const sample = 20
	t0 := time.Now()
	for i := range sample {
		cmd := exec.Command("ssh", "-i", srv.KeyFile, "-o", "UserKnownHostsFile="+known, "-o", "BatchMode=yes",
			"-p", strconv.Itoa(srv.Port), srv.User+"@127.0.0."+strconv.Itoa(i+2), "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ssh true: %v\n%s", err, out)
		}
	}
	sequential := time.Since(t0) * machines / sample

	perRun := fan / time.Duration(b.N)
	b.ReportMetric(perRun.Seconds(), "s-fire-to-200-starts")
	b.ReportMetric(sequential.Seconds(), "s-200-sequential-ssh-true")
	b.ReportMetric(sequential.Seconds()/perRun.Seconds(), "x-faster-than-sequential")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N*machines), "ms-core-cpu/machine")
}
