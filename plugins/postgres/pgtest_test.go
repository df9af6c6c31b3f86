package postgres_test

// The test harness: TestMain starts a real PostgreSQL server in a
// temporary directory (or uses SALTPETER_POSTGRES_DSN), and freshDB gives
// each test a database of its own.

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

	"github.com/saltpeter/saltpeter/plugins/postgres"
)

// srv is the server the tests use.
var srv struct {
	dsn     string // to the maintenance database "postgres"
	missing string // why there is no server: skip, or fail when required
	err     error  // the server could not be started
}

const installHint = "PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or PATH: " +
	"install them (Debian: apt-get install postgresql, or run .ci/deps), or set SALTPETER_POSTGRES_DSN to a server's DSN"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
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
// returns once the server accepts connections.
func startServer(bin string) (stop func(), dsn string, err error) {
	dir, err := os.MkdirTemp("", "saltpeter-pg-")
	if err != nil {
		return nil, "", err
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
			return nil, "", err
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
		return nil, "", err
	}
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
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
	if err := awaitServer(dsn, exited); err != nil {
		stop()
		log, _ := os.ReadFile(logPath)
		return nil, "", fmt.Errorf("%w\npostgres log:\n%s", err, log)
	}
	return stop, dsn, nil
}

// awaitServer connects until the server answers, it exits, or a minute
// passes.
func awaitServer(dsn string, exited <-chan error) error {
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
		case werr := <-exited:
			return fmt.Errorf("postgres exited before accepting connections: %v", werr)
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

// needServer skips the test when there is no server, or fails it when
// SALTPETER_REQUIRE=all or the server would not start.
func needServer(t *testing.T) {
	t.Helper()
	switch {
	case srv.err != nil:
		t.Fatalf("test PostgreSQL server: %v", srv.err)
	case srv.missing != "" && os.Getenv("SALTPETER_REQUIRE") == "all":
		t.Fatalf("SALTPETER_REQUIRE=all: %s", srv.missing)
	case srv.missing != "":
		t.Skip(srv.missing)
	}
}

// freshDB creates an empty database for the test, dropped after it, and
// returns its DSN.
func freshDB(t *testing.T) string {
	t.Helper()
	needServer(t)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	admin(t, "CREATE DATABASE "+name)
	t.Cleanup(func() { admin(t, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	return withDatabase(t, srv.dsn, name)
}

// admin runs a statement on the maintenance database.
func admin(t *testing.T, sql string) {
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
func withDatabase(t *testing.T, dsn, db string) string {
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

// open opens a store on dsn, closed after the test.
func open(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// query returns the first column of every row of sql on dsn.
func query[T any](t *testing.T, dsn, sql string, args ...any) []T {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[T])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}
