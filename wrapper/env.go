package wrapper

import (
	"crypto/x509"
	"errors"
	"fmt"
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

// jobEnv is the job's environment: the wrapper's own, less the bootstrap
// token and the detach marker, plus the spec's env (which wins). The
// dispatch variables stay: jobs find SP_JOB_NAME and the like useful.
func jobEnv(base []string, extra map[string]string) []string {
	env := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if k == wire.EnvToken || k == envDetached {
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
