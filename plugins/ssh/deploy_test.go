package sshtarget_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	sshtarget "github.com/saltpeter/saltpeter/plugins/ssh"
	"github.com/saltpeter/saltpeter/plugins/ssh/sshtest"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// TestDeployWrapper: with deploy_wrapper, the wrapper beside the plugin
// is copied to a host that lacks it, once; a host that has it (by
// checksum) gets nothing; a new local wrapper replaces the remote one by
// a rename, so that a wrapper running from the old file keeps it; and the
// per-architecture wrapper wins over the plain one.
func TestDeployWrapper(t *testing.T) {
	srv := sshtest.Start(t)
	local := t.TempDir()
	remote := filepath.Join(t.TempDir(), "not yet", "saltpeter-wrapper")
	machine := srv.Hosts()[0]
	config := srv.PluginConfig(map[string]any{"deploy_wrapper": true})
	newDeployer := func() *sshtarget.Target {
		tgt := newTarget(t, config)
		sshtarget.SetWrapperDir(tgt, local)
		return tgt
	}
	// writeLocal writes a local wrapper that says which it is.
	writeLocal := func(name, version string) {
		t.Helper()
		body := standInScript(`echo "` + wire.DetachedLine + ` pid=$$ version=` + version + `"`)
		if err := os.WriteFile(filepath.Join(local, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dispatch := func(tgt *sshtarget.Target, wantVersion string) {
		t.Helper()
		res, err := tgt.Dispatch(ctx(t), request(t, machine, remote))
		if err != nil {
			t.Fatalf("Dispatch: %v", err)
		}
		if !strings.HasSuffix(res.Detail, "version="+wantVersion) {
			t.Fatalf("Detail %q, want the line of wrapper version %s", res.Detail, wantVersion)
		}
	}
	sftps := func() int { return strings.Count(srv.Log(), "Starting session: subsystem 'sftp'") }

	writeLocal("saltpeter-wrapper", "1")
	tgt := newDeployer()
	dispatch(tgt, "1")
	sameFile(t, filepath.Join(local, "saltpeter-wrapper"), remote)
	first := inode(t, remote)
	if got := sftps(); got != 1 {
		t.Fatalf("%d SFTP sessions for the first deploy, want 1", got)
	}

	sessions := strings.Count(srv.Log(), "Starting session:")
	dispatch(tgt, "1")
	if got := strings.Count(srv.Log(), "Starting session:") - sessions; got != 1 {
		t.Errorf("a second dispatch to the host opened %d sessions, want only the wrapper's (no probe, no copy)", got)
	}
	dispatch(newDeployer(), "1") // a fresh pool probes, and finds the same checksum
	if got := sftps(); got != 1 || inode(t, remote) != first {
		t.Errorf("the wrapper was copied again (%d SFTP sessions)", got)
	}

	// A wrapper still running from the old file.
	running, err := os.Open(remote)
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()
	// A new mtime, whatever the clock's resolution.
	writeLocal("saltpeter-wrapper", "2")
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(local, "saltpeter-wrapper"), later, later); err != nil {
		t.Fatal(err)
	}
	dispatch(tgt, "2")
	sameFile(t, filepath.Join(local, "saltpeter-wrapper"), remote)
	if inode(t, remote) == first {
		t.Error("the new wrapper was written over the old file, not renamed into place")
	}
	old := make([]byte, 4096)
	n, _ := running.ReadAt(old, 0)
	if !strings.Contains(string(old[:n]), "version=1") {
		t.Errorf("the running wrapper's file changed under it: %q", old[:n])
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(remote), ".*tmp*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %q", leftovers)
	}

	writeLocal("saltpeter-wrapper-linux-"+runtime.GOARCH, "3")
	dispatch(newDeployer(), "3")
}

// TestDeployWrapperWithoutALocalOne: no wrapper for the host's
// architecture is an error saying what to put where, and the machine was
// reached.
func TestDeployWrapperWithoutALocalOne(t *testing.T) {
	srv := sshtest.Start(t)
	tgt := newTarget(t, srv.PluginConfig(map[string]any{"deploy_wrapper": true}))
	local := t.TempDir()
	sshtarget.SetWrapperDir(tgt, local)
	_, err := tgt.Dispatch(context.Background(), request(t, srv.Hosts()[0], filepath.Join(t.TempDir(), "w")))
	want := "put saltpeter-wrapper-linux-" + runtime.GOARCH + " in " + local
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Dispatch = %v, want an error with %q", err, want)
	}
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	ab, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(b)
	if err != nil {
		t.Fatalf("the deployed wrapper: %v", err)
	}
	if string(ab) != string(bb) {
		t.Errorf("%s is not a copy of %s", b, a)
	}
	if fi, err := os.Stat(b); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("%s is not executable (%v)", b, err)
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
