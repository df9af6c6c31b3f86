package wrapper

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

func validEnv() map[string]string {
	return map[string]string{
		wire.EnvWebSocketURL:  "ws://core1:8080/ws",
		wire.EnvWebSocketURLs: "ws://core1:8080/ws wss://core2:8443/ws",
		wire.EnvJobName:       "backup",
		wire.EnvJobInstance:   "run-1",
		wire.EnvMachineID:     "m1",
		wire.EnvToken:         "tok",
	}
}

func TestConfigFromEnv(t *testing.T) {
	caPath := writeTestCA(t)
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		change   map[string]string // "" deletes
		wantURLs []string
		wantErr  []string // each must be in the error
	}{
		{name: "valid", wantURLs: []string{"ws://core1:8080/ws", "wss://core2:8443/ws"}},
		{name: "only the list", change: map[string]string{wire.EnvWebSocketURL: ""},
			wantURLs: []string{"ws://core1:8080/ws", "wss://core2:8443/ws"}},
		{name: "first URL not in the list goes first", change: map[string]string{wire.EnvWebSocketURL: "ws://core3/ws"},
			wantURLs: []string{"ws://core3/ws", "ws://core1:8080/ws", "wss://core2:8443/ws"}},
		{name: "CA file", change: map[string]string{wire.EnvCAFile: caPath},
			wantURLs: []string{"ws://core1:8080/ws", "wss://core2:8443/ws"}},
		{name: "no URL", change: map[string]string{wire.EnvWebSocketURL: "", wire.EnvWebSocketURLs: ""},
			wantErr: []string{"neither SP_WEBSOCKET_URL nor SP_WEBSOCKET_URLS"}},
		{name: "http URL", change: map[string]string{wire.EnvWebSocketURL: "http://core1/ws"},
			wantErr: []string{`"http://core1/ws" is not a ws://`}},
		{name: "everything else missing",
			change:  map[string]string{wire.EnvJobName: "", wire.EnvJobInstance: "", wire.EnvMachineID: "", wire.EnvToken: ""},
			wantErr: []string{"SP_JOB_NAME is not set", "SP_JOB_INSTANCE is not set", "SP_MACHINE_ID is not set", "SP_TOKEN is not set"}},
		{name: "CA file missing", change: map[string]string{wire.EnvCAFile: "/nonexistent/ca.pem"},
			wantErr: []string{"SP_CA_FILE: open /nonexistent/ca.pem"}},
		{name: "CA file not PEM", change: map[string]string{wire.EnvCAFile: notPEM},
			wantErr: []string{"holds no PEM certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := validEnv()
			for k, v := range tc.change {
				env[k] = v
			}
			cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.URLs, tc.wantURLs) {
				t.Errorf("URLs = %q, want %q", cfg.URLs, tc.wantURLs)
			}
			if cfg.Token != "tok" || cfg.JobName != "backup" || cfg.JobInstance != "run-1" || cfg.Machine != "m1" {
				t.Errorf("config = %+v", cfg)
			}
			if (cfg.CA != nil) != (env[wire.EnvCAFile] != "") {
				t.Errorf("CA loaded: %v", cfg.CA != nil)
			}
		})
	}
}

// writeTestCA writes a self-signed certificate and returns its path.
func writeTestCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestJobEnv(t *testing.T) {
	base := []string{"PATH=/bin", "SP_TOKEN=secret", envDetached + "=1", "SP_JOB_NAME=backup", "PGHOST=old", "HOME=/root"}
	got := jobEnv(base, map[string]string{"PGHOST": "db1", "B": "2", "A": "1=x"})
	want := []string{"PATH=/bin", "SP_JOB_NAME=backup", "HOME=/root", "A=1=x", "B=2", "PGHOST=db1"}
	if !slices.Equal(got, want) {
		t.Errorf("jobEnv = %q\nwant %q", got, want)
	}
}

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spec    wire.Spec
		check   func(t *testing.T, js jobSpec)
		wantErr string
	}{
		{name: "defaults", spec: wire.Spec{Command: "true"}, check: func(t *testing.T, js jobSpec) {
			if js.heartbeat != defaultHeartbeat || js.kill.name != "SIGTERM" || js.kill.grace != defaultGrace || js.timeout != 0 {
				t.Errorf("got %+v", js)
			}
		}},
		{name: "everything", spec: wire.Spec{Command: "true", Timeout: "1d2h", NoOutputTimeout: "90s", Heartbeat: "2s",
			Kill: wire.KillPolicy{Signal: "int", Grace: "30s"}}, check: func(t *testing.T, js jobSpec) {
			if js.timeout != 26*time.Hour || js.noOutput != 90*time.Second || js.heartbeat != 2*time.Second ||
				js.kill.name != "SIGINT" || js.kill.grace != 30*time.Second {
				t.Errorf("got %+v", js)
			}
		}},
		{name: "no command", spec: wire.Spec{}, wantErr: "no command"},
		{name: "bad signal", spec: wire.Spec{Command: "true", Kill: wire.KillPolicy{Signal: "SIGNOPE"}}, wantErr: `unknown signal "SIGNOPE"`},
		{name: "bad durations", spec: wire.Spec{Command: "true", Timeout: "x", Heartbeat: "y"}, wantErr: "spec timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js, err := parseSpec(&tc.spec, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, js)
		})
	}
}
