package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// srv is the server the test binary's tests use, set by Main.
var srv struct {
	dsn     string // to the maintenance database "postgres"
	missing string // why there is no server: skip, or fail when required
	err     error  // the server could not be started
}

const installHint = "PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or PATH: " +
	"install them (Debian: apt-get install postgresql, or run .ci/deps), or set SALTPETER_POSTGRES_DSN to a server's DSN"

// Main runs the tests of m with a PostgreSQL server for FreshDB: the one
// SALTPETER_POSTGRES_DSN names, else one it starts before and stops
// after them. It returns m.Run's exit code, for TestMain to pass to
// os.Exit. A server that cannot be found or started does not stop the
// tests: only those calling FreshDB skip or fail.
func Main(m *testing.M) int {
	if dsn := os.Getenv("SALTPETER_POSTGRES_DSN"); dsn != "" {
		srv.dsn = dsn
		return m.Run()
	}
	bin, ok := findBin()
	if !ok {
		srv.missing = installHint
		return m.Run()
	}
	stop, dsn, err := startServer(bin)
	if err != nil {
		srv.err = err
	} else {
		srv.dsn = dsn
		defer stop()
	}
	return m.Run()
}

// FreshDB creates an empty database for the test, dropped after it, and
// returns its DSN. Without a server it skips the test, or fails it when
// SALTPETER_REQUIRE asks for PostgreSQL; a server that would not start
// fails it. It needs Main to have run.
func FreshDB(t testing.TB) string {
	t.Helper()
	needServer(t)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	admin(t, "CREATE DATABASE "+name)
	// FORCE: a test that failed may leave connections open, and the
	// database must go all the same.
	t.Cleanup(func() { admin(t, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	return withDatabase(t, srv.dsn, name)
}

// required reports whether SALTPETER_REQUIRE asks for PostgreSQL: "all",
// or a comma list naming "postgres".
func required() bool {
	for _, c := range strings.Split(os.Getenv("SALTPETER_REQUIRE"), ",") {
		if c = strings.TrimSpace(c); c == "all" || c == "postgres" {
			return true
		}
	}
	return false
}

// needServer skips the test when there is no server, or fails it when
// SALTPETER_REQUIRE asks for one or the server would not start.
func needServer(t testing.TB) {
	t.Helper()
	switch {
	case srv.err != nil:
		t.Fatalf("test PostgreSQL server: %v", srv.err)
	case srv.missing != "" && required():
		t.Fatalf("SALTPETER_REQUIRE=%s: %s", os.Getenv("SALTPETER_REQUIRE"), srv.missing)
	case srv.missing != "":
		t.Skip(srv.missing)
	case srv.dsn == "":
		t.Fatal("pgtest: no server: the package's TestMain must call pgtest.Main")
	}
}

// findBin returns the directory holding initdb and postgres: the newest
// Debian install, else PATH.
func findBin() (string, bool) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { // newest major first
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, true
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && isExec(filepath.Join(filepath.Dir(p), "postgres")) {
		return filepath.Dir(p), true
	}
	return "", false
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// startServer runs initdb and postgres in a temporary directory, as the
// postgres system user when the tests run as root (PostgreSQL refuses
// root), listening on 127.0.0.1 on a free port with trust auth, and
// returns once the server accepts connections. stop shuts it down and
// removes the directory.
func startServer(bin string) (stop func(), dsn string, err error) {
	dir, err := os.MkdirTemp("", "saltpeter-pg-")
	if err != nil {
		return nil, "", fmt.Errorf("temporary directory for PostgreSQL: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, "", fmt.Errorf("tests run as root and PostgreSQL refuses root, but there is no postgres system user to run it as (%v): install postgresql or run as another user", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, "", fmt.Errorf("hand %s to the postgres user: %w", dir, err)
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("initdb: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, "", fmt.Errorf("free port for PostgreSQL: %w", err)
	}
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", fmt.Errorf("PostgreSQL log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a ^C to the test binary reaches the
	// server only through stop's fast shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start postgres: %w", err)
	}
	// exited is closed, not sent on, once the server is gone: both
	// awaitServer and stop wait for it, and a server that died while
	// starting must not leave stop waiting for a second exit.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = os.RemoveAll(dir)
	}
	dsn = fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port)
	if err := awaitServer(dsn, exited, func() error { return waitErr }); err != nil {
		log, _ := os.ReadFile(logPath) // before stop removes it
		stop()
		return nil, "", fmt.Errorf("%w\npostgres log:\n%s", err, log)
	}
	return stop, dsn, nil
}

// awaitServer connects until the server answers, it exits (exited is
// closed; waitErr tells how), or a minute passes.
func awaitServer(dsn string, exited <-chan struct{}, waitErr func() error) error {
	deadline := time.Now().Add(time.Minute)
	retry := time.NewTicker(50 * time.Millisecond)
	defer retry.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within a minute: %v", err)
		}
		select {
		case <-exited:
			return fmt.Errorf("postgres exited before accepting connections: %v", waitErr())
		case <-retry.C:
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// admin runs a statement on the maintenance database.
func admin(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, srv.dsn)
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// withDatabase returns dsn naming database db instead.
func withDatabase(t testing.TB, dsn, db string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("SALTPETER_POSTGRES_DSN: %v", err)
		}
		u.Path = "/" + db
		return u.String()
	}
	return dsn + " dbname=" + db // a later keyword wins
}
