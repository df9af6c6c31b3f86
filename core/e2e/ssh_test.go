package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/saltpeter/saltpeter/plugins/ssh/sshtest"
)

// sshCore starts a core whose ssh target reaches srv with knownHosts,
// and whose jobs run the wrapper built for the tests.
func sshCore(t *testing.T, srv *sshtest.Server, knownHosts, jobs string) *core {
	t.Helper()
	return startCore(t, coreBlock("")+fmt.Sprintf(`
plugin "target" "ssh" {
  config {
    user        = %q
    key_file    = %q
    known_hosts = %q
  }
}
`, srv.User, srv.KeyFile, knownHosts)+jobs)
}

func sshJob(name, command string, hosts []string) string {
	return fmt.Sprintf(`
job %q {
  schedule = "@manually"
  command  = %q
  target "ssh" {
    hosts = [%s]
  }
  wrapper {
    path = %q
  }
}
`, name, command, `"`+strings.Join(hosts, `", "`)+`"`, filepath.Join(binDir, "saltpeter-wrapper"))
}

// TestSSHFleet: one job on three machine ids of a real sshd, each with
// its own result and output; killing one machine leaves the others
// running.
func TestSSHFleet(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t)
	hosts := srv.Hosts()
	c := sshCore(t, srv, srv.KnownHosts,
		sshJob("hello", `echo "on $SP_MACHINE_ID"`, hosts)+
			sshJob("long", "echo ready; while :; do sleep 0.2; done", hosts))

	id := c.runNow("hello")
	r := c.waitFinal(id, 60*time.Second)
	if r.Status != "succeeded" || len(r.Machines) != len(hosts) {
		t.Fatalf("run %s on %d machines, want succeeded on %d: %+v", r.Status, len(r.Machines), len(hosts), r)
	}
	for _, m := range r.Machines {
		if out := c.output(id, m.Machine, "stdout"); out != "on "+m.Machine+"\n" {
			t.Errorf("output of %s: %q", m.Machine, out)
		}
	}

	id = c.runNow("long")
	c.waitRun(id, 60*time.Second, "every machine running", func(r run) bool {
		for _, m := range r.Machines {
			if m.Status != "running" || !strings.Contains(c.output(id, m.Machine, "stdout"), "ready") {
				return false
			}
		}
		return len(r.Machines) == len(hosts)
	})
	one := hosts[1]
	if st := c.call(http.MethodPost, "/api/v1/runs/"+id+"/machines/"+one+"/kill", nil, nil); st != http.StatusAccepted {
		t.Fatalf("kill %s: %d", one, st)
	}
	status := func(r run, name string) string {
		for _, m := range r.Machines {
			if m.Machine == name {
				return m.Status
			}
		}
		return ""
	}
	r = c.waitRun(id, 30*time.Second, one+" killed", func(r run) bool { return status(r, one) == "killed" })
	if r.Status != "running" || status(r, hosts[0]) != "running" {
		t.Fatalf("after killing %s alone: %+v", one, r)
	}
	if st := c.call(http.MethodPost, "/api/v1/jobs/long/kill", nil, nil); st != http.StatusAccepted {
		t.Fatalf("kill: %d", st)
	}
	if r := c.waitFinal(id, 30*time.Second); r.Status != "killed" {
		t.Fatalf("run after the job kill: %+v", r)
	}
}

// TestSSHWrongHostKeyIsRefused: known_hosts lists another key for the
// host: the machine is an error (255) naming the host key, and no
// wrapper starts.
func TestSSHWrongHostKeyIsRefused(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	c := sshCore(t, srv, srv.WriteKnownHosts(t, key), sshJob("hello", "echo hi", srv.Hosts()[:1]))
	r := c.waitFinal(c.runNow("hello"), 60*time.Second)
	if r.Status != "error" || len(r.Machines) != 1 || r.Machines[0].Status != "error" || deref(r.Machines[0].ExitCode) != 255 {
		t.Fatalf("run with a wrong host key: %+v; want the machine error/255", r)
	}
	if !strings.Contains(c.output(r.ID, r.Machines[0].Machine, ""), "host key") && !strings.Contains(r.Machines[0].Error+r.Machines[0].Reason, "host key") {
		t.Errorf("the machine does not say the host key is wrong: %+v, output %q", r.Machines[0], c.output(r.ID, r.Machines[0].Machine, ""))
	}
}
