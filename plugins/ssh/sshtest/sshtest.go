package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

const installHint = "OpenSSH server (sshd) not found in /usr/sbin or PATH: " +
	"install it (Debian: apt-get install openssh-server, or run .ci/deps)"

// Server is a running sshd that a test may log in to.
type Server struct {
	// Port is the port sshd listens on, on 127.0.0.1 and, when IPv6
	// loopback works, ::1.
	Port int
	// User is the user to log in as: the one running the tests.
	User string
	// KeyFile is the client's private key (OpenSSH format, no
	// passphrase), authorised for User.
	KeyFile string
	// KnownHosts is a known_hosts file that lists HostKey for every
	// name in Hosts.
	KnownHosts string
	// HostKey is the server's public host key.
	HostKey ssh.PublicKey
	// Dir is the server's temporary directory, removed after the test.
	Dir string
	// Home is what sessions get as HOME (sshd's SetEnv): an empty
	// directory of the server's, so that the login shell reads a test's
	// startup files, not the developer's. A developer's .bashrc may cost
	// a second a login, and serialise concurrent ones on its locks (pyenv
	// does), which a test of ours should not measure. The working
	// directory stays the user's real home: sshd changes to that.
	Home string

	ipv6    bool
	logPath string
	extra   []string
	pid     int // the listening sshd's
}

// Required reports whether SALTPETER_REQUIRE asks for sshd: "all", or a
// comma list naming "sshd".
func Required() bool {
	for _, c := range strings.Split(os.Getenv("SALTPETER_REQUIRE"), ",") {
		if c = strings.TrimSpace(c); c == "all" || c == "sshd" {
			return true
		}
	}
	return false
}

// Find returns the sshd program: /usr/sbin/sshd, else sshd on PATH. sshd
// re-executes itself, so the path is absolute.
func Find() (string, bool) {
	if isExec("/usr/sbin/sshd") {
		return "/usr/sbin/sshd", true
	}
	if p, err := exec.LookPath("sshd"); err == nil {
		if abs, err := filepath.Abs(p); err == nil && isExec(abs) {
			return abs, true
		}
	}
	return "", false
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Start starts an sshd for the test and stops it when the test ends. It
// skips the test when there is no sshd (fails it when SALTPETER_REQUIRE
// asks for sshd), and fails it when sshd will not start. extraConfig are
// sshd_config lines added to the harness's own (for instance a
// ForceCommand, to see exactly what a client asked sshd to run); an extra
// ListenAddress replaces the loopback ones, and then Hosts and KnownHosts
// only hold for the addresses it covers.
func Start(t testing.TB, extraConfig ...string) *Server {
	t.Helper()
	path, ok := Find()
	switch {
	case !ok && Required():
		t.Fatalf("SALTPETER_REQUIRE=%s: %s", os.Getenv("SALTPETER_REQUIRE"), installHint)
	case !ok:
		t.Skip(installHint)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sshtest: current user: %v", err)
	}
	// Not t.TempDir: its name may hold spaces, which sshd_config would
	// need quoted.
	dir, err := os.MkdirTemp("", "saltpeter-sshd-")
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &Server{User: u.Username, Dir: dir, Home: filepath.Join(dir, "home"), logPath: filepath.Join(dir, "sshd.log"), extra: extraConfig}
	if err := os.Mkdir(s.Home, 0o700); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	if err := s.writeKeys(); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	if os.Geteuid() == 0 {
		// sshd run as root wants its privilege separation directory,
		// which Debian's service unit creates and nothing else does.
		if err := ensurePrivsepDir(); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
	}

	// A free port can be taken between our probe and sshd's bind: try
	// again with another.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if s.Port, s.ipv6, err = freePort(); err != nil {
			t.Fatalf("sshtest: free port: %v", err)
		}
		stop, err := s.start(path)
		if err == nil {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("sshd log:\n%s", s.Log())
				}
			})
			if err := s.writeKnownHosts(s.KnownHosts, s.HostKey); err != nil {
				t.Fatalf("sshtest: %v", err)
			}
			return s
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	t.Fatalf("sshtest: start %s: %v", path, lastErr)
	return nil
}

// Addr is the server's IPv4 loopback address, host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// Hosts are machine ids (host:port) that all reach this server under
// different names: 127.0.0.1, localhost and, when IPv6 loopback works,
// [::1].
func (s *Server) Hosts() []string {
	p := strconv.Itoa(s.Port)
	hosts := []string{net.JoinHostPort("127.0.0.1", p), net.JoinHostPort("localhost", p)}
	if s.ipv6 {
		hosts = append(hosts, net.JoinHostPort("::1", p))
	}
	return hosts
}

// PluginConfig is the ssh target's plugin config for this server, as
// JSON: user, key_file and known_hosts, plus extra (which wins).
func (s *Server) PluginConfig(extra map[string]any) []byte {
	c := map[string]any{"user": s.User, "key_file": s.KeyFile, "known_hosts": s.KnownHosts}
	for k, v := range extra {
		c[k] = v
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // a map of plain values always marshals
	}
	return b
}

// WriteKnownHosts writes a known_hosts file that lists key, instead of the
// server's, for every name in Hosts, and returns its path: what a client
// sees after the server was re-keyed, or when someone is in the middle.
func (s *Server) WriteKnownHosts(t testing.TB, key ssh.PublicKey) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := s.writeKnownHosts(path, key); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return path
}

// Log is what sshd logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// Logins counts the public key logins sshd accepted so far: one per
// connection a client made.
func (s *Server) Logins() int {
	return strings.Count(s.Log(), "Accepted publickey for ")
}

// DropConnections kills the sshd processes serving the connections open
// now, as a host that crashed would: the clients see their connection
// end. The server goes on listening. It returns how many connections it
// dropped.
func (s *Server) DropConnections(t testing.TB) int {
	t.Helper()
	return s.SignalConnections(t, syscall.SIGKILL)
}

// SignalConnections sends sig to the sshd processes serving the
// connections open now, and to everything under them: SIGSTOP makes a
// host that stopped answering without closing anything. It returns how
// many connections it signalled. Whatever is left when the test ends is
// killed.
func (s *Server) SignalConnections(t testing.TB, sig syscall.Signal) int {
	t.Helper()
	procs, err := processTree()
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	n := 0
	// sshd -D serves each connection in a child of its own, which has
	// the session processes under it.
	for _, conn := range procs[s.pid] {
		signalTree(procs, conn, sig)
		n++
	}
	return n
}

// processTree maps each pid to its children.
func processTree() (map[int][]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	tree := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid := parentOf(pid); ppid > 0 {
			tree[ppid] = append(tree[ppid], pid)
		}
	}
	return tree, nil
}

// signalTree signals pid and its descendants, parents first, so that a
// SIGSTOP leaves no process of the tree running to notice.
func signalTree(tree map[int][]int, pid int, sig syscall.Signal) {
	_ = syscall.Kill(pid, sig)
	for _, c := range tree[pid] {
		signalTree(tree, c, sig)
	}
}

// parentOf reads pid's parent from /proc/PID/stat; -1 when it is gone.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return ppid
}

// writeKeys writes a host key, a client key and the authorized_keys file
// that lets the client in.
func (s *Server) writeKeys() error {
	hostPub, err := writeKey(filepath.Join(s.Dir, "ssh_host_ed25519_key"))
	if err != nil {
		return err
	}
	s.HostKey = hostPub
	s.KeyFile = filepath.Join(s.Dir, "id_ed25519")
	clientPub, err := writeKey(s.KeyFile)
	if err != nil {
		return err
	}
	s.KnownHosts = filepath.Join(s.Dir, "known_hosts")
	return os.WriteFile(filepath.Join(s.Dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600)
}

// writeKey writes a fresh ed25519 private key to path (0600, as sshd
// and ssh insist) and its public half to path.pub.
func writeKey(path string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		return nil, err
	}
	return sshPub, nil
}

func (s *Server) writeKnownHosts(path string, key ssh.PublicKey) error {
	var lines []string
	for _, h := range s.Hosts() {
		lines = append(lines, knownhosts.Line([]string{knownhosts.Normalize(h)}, key))
	}
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

func ensurePrivsepDir() error {
	const dir = "/run/sshd"
	if _, err := os.Stat("/run"); err != nil {
		return nil // not Debian's layout; sshd will say what it wants
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sshd's privilege separation directory: %w", err)
	}
	return nil
}

// freePort finds a port free on 127.0.0.1, and says whether it is free
// on ::1 too.
func freePort() (int, bool, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, false, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	ipv6 := false
	if l6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port))); err == nil {
		ipv6 = true
		_ = l6.Close()
	}
	_ = l.Close()
	return port, ipv6, nil
}

var errAddrInUse = errors.New("port taken")

// start writes sshd_config for s.Port, starts sshd and returns once it
// answers with its banner.
func (s *Server) start(path string) (stop func(), err error) {
	listen := "ListenAddress 127.0.0.1\n"
	if s.ipv6 {
		listen += "ListenAddress ::1\n"
	}
	var extra string
	for _, l := range s.extra {
		// An extra ListenAddress replaces the loopback ones (a test that
		// reaches the server as many addresses listens on 0.0.0.0).
		if strings.HasPrefix(strings.TrimSpace(l), "ListenAddress") {
			listen = ""
		}
		extra += l + "\n"
	}
	config := fmt.Sprintf(`# Written by sshtest for one test.
Port %d
%sHostKey %s
AuthorizedKeysFile %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers %s
StrictModes no
UsePAM no
PermitUserRC no
PidFile %s
PrintMotd no
PrintLastLog no
MaxStartups 100
Subsystem sftp internal-sftp
LogLevel VERBOSE
SetEnv HOME=%s
%s`, s.Port, listen, filepath.Join(s.Dir, "ssh_host_ed25519_key"), filepath.Join(s.Dir, "authorized_keys"),
		s.User, filepath.Join(s.Dir, "sshd.pid"), s.Home, extra)
	cfgPath := filepath.Join(s.Dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(path, "-D", "-e", "-f", cfgPath)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a ^C to the test binary reaches sshd
	// only through stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.pid = cmd.Process.Pid
	// exited is closed once sshd is gone: both the wait below and stop
	// watch it.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop = func() {
		// The connections' processes outlive the listener; a test may
		// have stopped some.
		if tree, err := processTree(); err == nil {
			for _, conn := range tree[cmd.Process.Pid] {
				signalTree(tree, conn, syscall.SIGKILL)
			}
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	if err := awaitBanner(s.Addr(), exited); err != nil {
		stop()
		log := s.Log()
		if strings.Contains(log, "Address already in use") {
			return nil, fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		if waitErr != nil {
			err = fmt.Errorf("%w (sshd: %v)", err, waitErr)
		}
		return nil, fmt.Errorf("%w\nsshd log:\n%s", err, log)
	}
	return stop, nil
}

// awaitBanner connects to addr until an SSH server greets, sshd exits
// (exited is closed), or 30 seconds pass.
func awaitBanner(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	retry := time.NewTicker(20 * time.Millisecond)
	defer retry.Stop()
	for {
		err := banner(addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd did not answer on %s within 30s: %v", addr, err)
		}
		select {
		case <-exited:
			return errors.New("sshd exited while starting")
		case <-retry.C:
		}
	}
}

func banner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 4)
	if _, err := c.Read(b); err != nil {
		return err
	}
	if string(b) != "SSH-" {
		return fmt.Errorf("%s greets with %q, not an SSH banner", addr, b)
	}
	return nil
}
