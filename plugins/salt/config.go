package salt

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults of the plugin block's config.
const (
	defaultEauth         = "pam"
	defaultPingTimeout   = 10 * time.Second
	defaultReturnTimeout = 10 * time.Second
	// defaultMinionPath is the PATH the wrapper gets on the minion:
	// clean_env leaves it none, and Salt then looks the command up in
	// Python's default path (/bin:/usr/bin), which misses /usr/local/bin.
	defaultMinionPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// fileConfig is the plugin block's config as the operator writes it.
type fileConfig struct {
	URL           string `json:"url"`
	Username      string `json:"username"`
	PasswordFile  string `json:"password_file"`
	Eauth         string `json:"eauth"`
	CAFile        string `json:"ca_file"`
	PingTimeout   string `json:"ping_timeout"`
	ReturnTimeout string `json:"return_timeout"`
	MinionPath    string `json:"minion_path"`
}

// config is the checked configuration.
type config struct {
	url      *url.URL
	username string
	password string
	eauth    string
	// tls is nil for an http:// URL.
	tls *tls.Config
	// pingTimeout bounds how long Resolve waits for test.ping returns.
	pingTimeout time.Duration
	// returnTimeout bounds how long Dispatch waits for cmd.run_bg's return.
	returnTimeout time.Duration
	minionPath    string
}

// parseConfig decodes and checks the plugin block's config: unknown keys
// and wrong types are refused, the password is read from its file.
func parseConfig(raw []byte) (config, error) {
	var fc fileConfig
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return config{}, fmt.Errorf("decode: %w", err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return config{}, errors.New("decode: trailing data after the config object")
	}

	var errs []error
	c := config{
		username:   fc.Username,
		eauth:      fc.Eauth,
		minionPath: fc.MinionPath,
	}
	if c.eauth == "" {
		c.eauth = defaultEauth
	}
	if c.minionPath == "" {
		c.minionPath = defaultMinionPath
	}
	if c.username == "" {
		errs = append(errs, errors.New("username is required"))
	}

	u, err := parseURL(fc.URL)
	if err != nil {
		errs = append(errs, err)
	}
	c.url = u

	switch {
	case fc.PasswordFile == "":
		errs = append(errs, errors.New("password_file is required"))
	default:
		b, err := os.ReadFile(fc.PasswordFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("password_file: %w", err))
		case strings.TrimSpace(string(b)) == "":
			errs = append(errs, fmt.Errorf("password_file %s is empty", fc.PasswordFile))
		default:
			// Files end in a newline that is no part of the password.
			c.password = strings.TrimSpace(string(b))
		}
	}

	if u != nil && u.Scheme == "https" {
		c.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if fc.CAFile != "" {
			pem, err := os.ReadFile(fc.CAFile)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("ca_file: %w", err))
			default:
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					errs = append(errs, fmt.Errorf("ca_file %s holds no PEM certificate", fc.CAFile))
				}
				// Only this CA: a salt-api certificate is usually
				// self-signed or from a private CA.
				c.tls.RootCAs = pool
			}
		}
	} else if fc.CAFile != "" {
		errs = append(errs, fmt.Errorf("ca_file is set but url %q is not https", fc.URL))
	}

	if c.pingTimeout, err = parseTimeout("ping_timeout", fc.PingTimeout, defaultPingTimeout); err != nil {
		errs = append(errs, err)
	}
	if c.returnTimeout, err = parseTimeout("return_timeout", fc.ReturnTimeout, defaultReturnTimeout); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return config{}, err
	}
	return c, nil
}

func parseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("url (salt-api's, e.g. https://salt-master:8000) is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("url %q: want an https:// (or http://) URL", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("url %q has no host", s)
	}
	if u.User != nil {
		// It would end up in error messages and logs.
		return nil, fmt.Errorf("url %q holds credentials: use username and password_file", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("url %q: want no query or fragment", s)
	}
	// The endpoints are joined to it; salt-api may sit under a prefix
	// (rest_cherrypy's root_prefix).
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func parseTimeout(name, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s %q: want a positive duration", name, s)
	}
	return d, nil
}

// transport is the HTTP transport for c: TLS always verified, against
// ca_file when set.
func (c config) transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = c.tls
	return tr
}
