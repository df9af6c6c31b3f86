package sshtarget

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/pkg/sftp"
)

// deployPath is where deploy_wrapper puts the wrapper of a dispatch that
// names none: relative, so in the remote user's home directory, where
// both SFTP and commands start.
const deployPath = ".saltpeter/saltpeter-wrapper"

// probeLine starts the output of the probe, after whatever the login
// shell's startup files printed.
const probeLine = "saltpeter-ssh: probe"

// goarch maps `uname -m` to the Go architecture the wrapper is built for.
var goarch = map[string]string{
	"x86_64": "amd64", "amd64": "amd64",
	"aarch64": "arm64", "arm64": "arm64",
	"i386": "386", "i686": "386",
	"armv6l": "arm", "armv7l": "arm",
	"riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x", "loongarch64": "loong64",
}

// deploy makes sure the wrapper at wrapper (deployPath when it is a bare
// name, found on PATH otherwise) on h is the local one for h's
// architecture, copying it over SFTP when it is missing or differs, and
// returns the remote path to run. What a host has is remembered by
// checksum: a host is probed once per remote path and local binary, and
// copied to at most once.
func (t *Target) deploy(ctx context.Context, log hclog.Logger, p *pool, h *host, machine, wrapper string) (string, error) {
	remotePath := wrapper
	if !strings.Contains(wrapper, "/") {
		remotePath = deployPath
	}
	select {
	case h.deployLock <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-h.deployLock }()

	if h.arch != "" {
		_, sum, err := t.localWrapper(h.arch)
		if err != nil {
			return "", err
		}
		if h.deployed[remotePath] == sum {
			return remotePath, nil
		}
	}
	arch, remoteSum, err := t.probe(ctx, p, h, machine, remotePath)
	if err != nil {
		return "", err
	}
	h.arch = arch
	local, sum, err := t.localWrapper(arch)
	if err != nil {
		return "", err
	}
	if remoteSum != sum {
		start := time.Now()
		n, err := t.copyWrapper(ctx, p, h, machine, local, sum, remotePath)
		if err != nil {
			return "", fmt.Errorf("deploy_wrapper: copy %s to %s: %w", local, remotePath, err)
		}
		log.Info("deployed the wrapper", "local", local, "path", remotePath, "sha256", sum, "bytes", n,
			"copy_ms", time.Since(start).Milliseconds())
	}
	h.deployed[remotePath] = sum
	return remotePath, nil
}

// probe asks h for its architecture and the checksum of remotePath (""
// when there is none).
func (t *Target) probe(ctx context.Context, p *pool, h *host, machine, remotePath string) (arch, sum string, err error) {
	script := `echo "` + probeLine + `"; uname -m; sha256sum < "$0" 2>/dev/null || echo missing`
	out, err := t.output(ctx, p, h, machine, "exec /bin/sh -c "+shellQuote(script)+" "+shellQuote(remotePath))
	if err != nil {
		return "", "", fmt.Errorf("deploy_wrapper: probe: %w", err)
	}
	_, after, ok := strings.Cut(out, probeLine+"\n")
	lines := strings.Fields(after)
	if !ok || len(lines) < 2 {
		return "", "", fmt.Errorf("deploy_wrapper: probe: unexpected output %q", out)
	}
	arch = lines[0]
	if lines[1] != "missing" {
		sum = lines[1]
	}
	return arch, sum, nil
}

// output runs command in a session and returns its standard output (up
// to 4 KiB), or an error with its exit status and stderr.
func (t *Target) output(ctx context.Context, p *pool, h *host, machine, command string) (string, error) {
	_, sess, release, err := t.open(ctx, p, h, machine)
	if err != nil {
		return "", err
	}
	defer release()
	stdout, stderr := &excerpt{max: 4096}, &excerpt{max: maxStderr}
	sess.Stdout, sess.Stderr = stdout, stderr
	stop := context.AfterFunc(ctx, func() { _ = sess.Close() })
	err = sess.Run(command)
	if !stop() {
		return "", ctx.Err()
	}
	if err != nil {
		return "", fmt.Errorf("%s: %s", exitText(err), stderr.String())
	}
	return stdout.b.String(), nil
}

// localWrapper picks the wrapper for hosts whose `uname -m` is arch:
// saltpeter-wrapper-linux-<goarch> beside this executable, else
// saltpeter-wrapper when that is this machine's architecture.
func (t *Target) localWrapper(arch string) (path, sum string, err error) {
	dir := t.wrapperDir
	if dir == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", "", fmt.Errorf("deploy_wrapper: find this executable: %w", err)
		}
		dir = filepath.Dir(exe)
	}
	ga := goarch[arch]
	candidates := []string{}
	if ga != "" {
		candidates = append(candidates, filepath.Join(dir, "saltpeter-wrapper-linux-"+ga))
		if ga == runtime.GOARCH && runtime.GOOS == "linux" {
			candidates = append(candidates, filepath.Join(dir, "saltpeter-wrapper"))
		}
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
			sum, err := t.sums.sum(c, fi)
			if err != nil {
				return "", "", fmt.Errorf("deploy_wrapper: %w", err)
			}
			return c, sum, nil
		}
	}
	if ga == "" {
		return "", "", fmt.Errorf("deploy_wrapper: no wrapper is built for %s hosts", arch)
	}
	return "", "", fmt.Errorf("deploy_wrapper: no wrapper for %s hosts: put saltpeter-wrapper-linux-%s in %s", arch, ga, dir)
}

// localSums caches the checksums of local files by size and mtime.
type localSums struct {
	mu sync.Mutex
	m  map[string]localSum
}

type localSum struct {
	size  int64
	mtime time.Time
	sum   string
}

func (l *localSums) sum(p string, fi os.FileInfo) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.m[p]; ok && s.size == fi.Size() && s.mtime.Equal(fi.ModTime()) {
		return s.sum, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if l.m == nil {
		l.m = map[string]localSum{}
	}
	l.m[p] = localSum{size: fi.Size(), mtime: fi.ModTime(), sum: sum}
	return sum, nil
}

// copyWrapper copies local (whose checksum is sum) to remotePath over
// SFTP: to a temporary name in the same directory, then renamed into
// place, so that a wrapper running from the old file keeps it and no
// wrapper ever starts from half a file. It returns the bytes copied.
func (t *Target) copyWrapper(ctx context.Context, p *pool, h *host, machine, local, sum, remotePath string) (int64, error) {
	_, sess, release, err := t.open(ctx, p, h, machine)
	if err != nil {
		return 0, err
	}
	defer release()
	w, err := sess.StdinPipe()
	if err != nil {
		return 0, err
	}
	r, err := sess.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := sess.RequestSubsystem("sftp"); err != nil {
		return 0, fmt.Errorf("start sftp: %w", err)
	}
	client, err := sftp.NewClientPipe(r, w)
	if err != nil {
		return 0, fmt.Errorf("start sftp: %w", err)
	}
	defer client.Close()
	// SFTP calls take no context: closing the session ends them.
	stop := context.AfterFunc(ctx, func() { _ = client.Close(); _ = sess.Close() })
	defer stop()
	n, err := upload(client, local, sum, remotePath)
	if ctx.Err() != nil {
		return n, ctx.Err()
	}
	return n, err
}

func upload(client *sftp.Client, local, sum, remotePath string) (n int64, err error) {
	dir := path.Dir(remotePath)
	if err := client.MkdirAll(dir); err != nil {
		return 0, fmt.Errorf("create %s: %w", dir, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	tmp := path.Join(dir, "."+path.Base(remotePath)+".tmp-"+hex.EncodeToString(b))
	f, err := client.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = client.Remove(tmp)
		}
	}()
	src, err := os.Open(local)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	hash := sha256.New()
	if n, err = f.ReadFrom(io.TeeReader(src, hash)); err != nil {
		return n, fmt.Errorf("write %s: %w", tmp, err)
	}
	if got := hex.EncodeToString(hash.Sum(nil)); got != sum {
		return n, fmt.Errorf("%s changed while it was copied", local)
	}
	if err := f.Chmod(0o755); err != nil {
		return n, fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := rename(client, tmp, remotePath); err != nil {
		return n, err
	}
	return n, nil
}

// rename puts tmp in place of remotePath at once (OpenSSH's posix-rename);
// a server without it gets a remove and a rename, and a moment without a
// wrapper.
func rename(client *sftp.Client, tmp, remotePath string) error {
	if _, ok := client.HasExtension("posix-rename@openssh.com"); ok {
		if err := client.PosixRename(tmp, remotePath); err != nil {
			return fmt.Errorf("rename %s to %s: %w", tmp, remotePath, err)
		}
		return nil
	}
	if err := client.Remove(remotePath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the old %s: %w", remotePath, err)
	}
	if err := client.Rename(tmp, remotePath); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, remotePath, err)
	}
	return nil
}
