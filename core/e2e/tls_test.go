package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testPKI is a CA of the test's own and a certificate it signed for
// 127.0.0.1, as files.
type testPKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
}

func newTestPKI(t *testing.T, dir, name string) testPKI {
	t.Helper()
	write := func(file, typ string, der []byte) string {
		path := filepath.Join(dir, name+"-"+file)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{caFile: write("ca.pem", "CERTIFICATE", caDER), certFile: write("cert.pem", "CERTIFICATE", der),
		keyFile: write("key.pem", "EC PRIVATE KEY", keyDER), pool: pool}
}

// TestWrappersOverTLS: a core serving HTTPS and WSS with a certificate
// of a private CA. Wrappers given that CA (wrapper_ca_file, SP_CA_FILE)
// connect and the run succeeds; wrappers given another CA refuse the
// core's certificate, never connect, and the machine ends not_started.
func TestWrappersOverTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki, other := newTestPKI(t, dir, "site"), newTestPKI(t, dir, "other")
	for _, c := range []struct {
		name, ca, want string
	}{
		{"the core's CA", pki.caFile, "succeeded"},
		{"another CA", other.caFile, "not_started"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			core := startCore(t, fmt.Sprintf(`core {
  listen             = "127.0.0.1:0"
  tls_cert           = %q
  tls_key            = %q
  wrapper_ca_file    = %q
  heartbeat_interval = "500ms"
  heartbeat_timeout  = "2s"
  connect_deadline   = "4s"
}
`, pki.certFile, pki.keyFile, c.ca)+job("hello", "echo over tls", ""))
			core.scheme = "https"
			core.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}}
			id := core.runNow("hello")
			r := core.waitFinal(id, 30*time.Second)
			if r.Status != c.want {
				t.Fatalf("run %s, want %s: %+v", r.Status, c.want, r)
			}
			if c.want == "succeeded" {
				if out := core.output(id, hostname(t), "stdout"); out != "over tls\n" {
					t.Errorf("output %q", out)
				}
			}
		})
	}
}

// TestWrapperTriesTheAdvertisedURLsInOrder: the first advertised core
// does not answer; the wrapper goes on to the next and the run succeeds.
func TestWrapperTriesTheAdvertisedURLsInOrder(t *testing.T) {
	t.Parallel()
	dead, port := freePort(t), freePort(t)
	c := startCore(t, fmt.Sprintf(`core {
  listen             = "127.0.0.1:%d"
  advertise          = ["ws://127.0.0.1:%d/ws", "ws://127.0.0.1:%d/ws"]
  heartbeat_interval = "500ms"
  heartbeat_timeout  = "2s"
  connect_deadline   = "20s"
}
`, port, dead, port)+job("hello", "echo second", ""))
	id := c.runNow("hello")
	if r := c.waitFinal(id, 30*time.Second); r.Status != "succeeded" {
		t.Fatalf("run %s: %+v", r.Status, r)
	}
	if out := c.output(id, hostname(t), "stdout"); out != "second\n" {
		t.Errorf("output %q", out)
	}
}
