package email_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test SMTP server's user.
const (
	smtpUser     = "saltpeter"
	smtpPassword = "correct horse battery staple"
)

// required reports whether SALTPETER_REQUIRE asks for the SMTP server:
// "all", or a comma list naming "aiosmtpd".
func required() bool {
	for _, c := range strings.Split(os.Getenv("SALTPETER_REQUIRE"), ",") {
		if c = strings.TrimSpace(c); c == "all" || c == "aiosmtpd" {
			return true
		}
	}
	return false
}

// python finds a python3 that has aiosmtpd: Debian's own first (where
// python3-aiosmtpd puts it), then the one on PATH.
func python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import aiosmtpd").Run() == nil {
			return path
		}
	}
	why := "no python3 with aiosmtpd (apt-get install python3-aiosmtpd; .ci/deps does)"
	if required() {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// smtpd is a running aiosmtpd (testdata/smtpd.py).
type smtpd struct {
	port   int
	dir    string // where it writes what it accepts
	caFile string // the CA of its certificate
}

// pki is a CA and a certificate it signed for 127.0.0.1 and localhost.
type pki struct{ caFile, certFile, keyFile string }

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "saltpeter test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := pki{filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	for path, block := range map[string]*pem.Block{
		p.caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		p.certFile: {Type: "CERTIFICATE", Bytes: leafDER},
		p.keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// startSMTPD starts testdata/smtpd.py and stops it when the test ends.
func startSMTPD(t *testing.T, implicitTLS bool) *smtpd {
	t.Helper()
	py := python(t)
	p := newPKI(t)
	s := &smtpd{dir: t.TempDir(), caFile: p.caFile}
	args := []string{filepath.Join("testdata", "smtpd.py"), "--cert", p.certFile, "--key", p.keyFile,
		"--dir", s.dir, "--user", smtpUser, "--password", smtpPassword}
	if implicitTLS {
		args = append(args, "--implicit-tls")
	}
	cmd := exec.Command(py, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start smtpd: %v", err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = stdin.Close() // it stops when its standard input closes
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case line := <-lines:
		port, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "port=")))
		if err != nil {
			<-exited
			t.Fatalf("smtpd said %q: %v\n%s", line, err, stderr.String())
		}
		s.port = port
	case <-time.After(30 * time.Second):
		t.Fatal("smtpd did not listen within 30s")
	}
	return s
}

// record is what smtpd.py wrote of one accepted message.
type record struct {
	MailFrom string   `json:"mail_from"`
	RcptTos  []string `json:"rcpt_tos"`
	Login    *string  `json:"login"`
	TLS      bool     `json:"tls"`
	Content  string   `json:"content"`
}

// received returns what the server accepted so far, in order.
func (s *smtpd) received(t *testing.T) []record {
	t.Helper()
	var recs []record
	for n := 1; ; n++ {
		b, err := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("%d.json", n)))
		if os.IsNotExist(err) {
			return recs
		}
		if err != nil {
			t.Fatal(err)
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("smtpd record %d: %v", n, err)
		}
		recs = append(recs, r)
	}
}

// config is the notifier's config for this server, with kv over it.
func (s *smtpd) config(t *testing.T, kv map[string]any) []byte {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(smtpPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := map[string]any{
		"host": "127.0.0.1", "port": s.port, "username": smtpUser, "password_file": pw,
		"from": "Saltpeter <cron@example.com>", "to": []string{"ops@example.com"}, "ca_file": s.caFile,
	}
	for k, v := range kv {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
