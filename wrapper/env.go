package wrapper

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// EnvWrapperLog names a file the detached wrapper appends its JSON log to;
// without it the detached wrapper's log goes nowhere.
const EnvWrapperLog = "SP_WRAPPER_LOG"

// Config is what the dispatch environment tells the wrapper.
type Config struct {
	// URLs are the core URLs to dial, in order of preference; each already
	// ends in /ws.
	URLs []string
	// CA is the PEM of SP_CA_FILE, nil to use the system roots for wss.
	CA          []byte
	JobName     string
	JobInstance string
	Machine     string
	// Token is the bootstrap token; never logged, never given to the job.
	Token string
	// LogFile is SP_WRAPPER_LOG, "" for none.
	LogFile string
}

// ConfigFromEnv reads and checks the dispatch environment. The error names
// every variable that is missing or wrong, so one attempt tells all.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		JobName:     getenv(wire.EnvJobName),
		JobInstance: getenv(wire.EnvJobInstance),
		Machine:     getenv(wire.EnvMachineID),
		Token:       getenv(wire.EnvToken),
		LogFile:     getenv(EnvWrapperLog),
	}
	var errs []error
	for _, v := range []struct{ name, val string }{
		{wire.EnvJobName, c.JobName},
		{wire.EnvJobInstance, c.JobInstance},
		{wire.EnvMachineID, c.Machine},
		{wire.EnvToken, c.Token},
	} {
		if v.val == "" {
			errs = append(errs, fmt.Errorf("%s is not set", v.name))
		}
	}

	// SP_WEBSOCKET_URL is the first choice; SP_WEBSOCKET_URLS lists all.
	if first := getenv(wire.EnvWebSocketURL); first != "" {
		c.URLs = append(c.URLs, first)
	}
	for _, u := range strings.Fields(getenv(wire.EnvWebSocketURLs)) {
		if !slices.Contains(c.URLs, u) {
			c.URLs = append(c.URLs, u)
		}
	}
	if len(c.URLs) == 0 {
		errs = append(errs, fmt.Errorf("neither %s nor %s is set", wire.EnvWebSocketURL, wire.EnvWebSocketURLs))
	}
	for _, u := range c.URLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "ws" && p.Scheme != "wss") || p.Host == "" {
			errs = append(errs, fmt.Errorf("core URL %q is not a ws:// or wss:// URL", u))
		}
	}

	if path := getenv(wire.EnvCAFile); path != "" {
		pem, err := os.ReadFile(path)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", wire.EnvCAFile, err))
		case !x509.NewCertPool().AppendCertsFromPEM(pem):
			errs = append(errs, fmt.Errorf("%s: %s holds no PEM certificate", wire.EnvCAFile, path))
		default:
			c.CA = pem
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("dispatch environment: %w", err)
	}
	return c, nil
}

// maxEnvInput bounds what ReadEnv reads: a dispatch environment is a few
// hundred bytes, and whatever is far beyond that is not one.
const maxEnvInput = 1 << 20

// ReadEnv reads a dispatch environment from r until EOF: KEY=VALUE
// records, each followed by a NUL byte (the last one may lack it). It is
// how a target that starts the wrapper through a remote shell (ssh) hands
// it the environment without a command line, where ps and sshd's logs
// would show SP_TOKEN (the -env-stdin flag). A record without "=", with
// an empty name, naming a variable again or the wrapper's own detach
// marker, an empty record before the end, and more than 1 MiB in all are
// refused; the error gives the record's number and name, never a value.
func ReadEnv(r io.Reader) ([]string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxEnvInput+1))
	if err != nil {
		return nil, fmt.Errorf("read the dispatch environment: %w", err)
	}
	if len(b) > maxEnvInput {
		return nil, fmt.Errorf("more than %d bytes of dispatch environment", maxEnvInput)
	}
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil, nil
	}
	var env []string
	seen := map[string]bool{}
	for i, rec := range bytes.Split(b, []byte{0}) {
		n := i + 1
		k, _, ok := bytes.Cut(rec, []byte("="))
		switch {
		case len(rec) == 0:
			return nil, fmt.Errorf("record %d is empty (two NUL bytes in a row)", n)
		case !ok:
			// No name to show: the record may be a value cut loose.
			return nil, fmt.Errorf("record %d is not KEY=VALUE (no \"=\")", n)
		case len(k) == 0:
			return nil, fmt.Errorf("record %d has an empty name", n)
		case string(k) == envDetached:
			return nil, fmt.Errorf("record %d sets %s, which is the wrapper's own", n, envDetached)
		case seen[string(k)]:
			return nil, fmt.Errorf("record %d sets %q a second time", n, k)
		}
		seen[string(k)] = true
		env = append(env, string(rec))
	}
	return env, nil
}

// WithEnv is the environment of a wrapper that read vars with ReadEnv:
// base (its process environment) less every SP_ variable, since the
// dispatch environment comes from vars alone, then vars. The job still
// gets PATH, HOME and the rest of base.
func WithEnv(base, vars []string) []string {
	env := make([]string, 0, len(base)+len(vars))
	for _, kv := range base {
		if !strings.HasPrefix(kv, "SP_") {
			env = append(env, kv)
		}
	}
	return append(env, vars...)
}

// SetEnviron makes env, KEY=VALUE entries (a later one wins), this
// process's whole environment: a wrapper that read its dispatch
// environment with ReadEnv and runs the job itself (DetachInPlace) gives
// the job what a detached copy would have got.
func SetEnviron(env []string) {
	os.Clearenv()
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			os.Setenv(k, v)
		}
	}
}

// Getenv looks a variable up in env, as os.Getenv does in the process
// environment.
func Getenv(env []string) func(string) string {
	return func(key string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
				return v
			}
		}
		return ""
	}
}

// jobEnv is the job's environment: the wrapper's own, less the bootstrap
// token and the detach markers, plus the spec's env (which wins). The
// dispatch variables stay: jobs find SP_JOB_NAME and the like useful.
func jobEnv(base []string, extra map[string]string) []string {
	env := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if k == wire.EnvToken || k == envDetached || k == wire.EnvDetachedByTarget {
			continue
		}
		if _, override := extra[k]; override {
			continue
		}
		env = append(env, kv)
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	return env
}
