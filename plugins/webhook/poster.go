package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/saltpeter/saltpeter/sdk/notifier"
)

// Poster delivers bodies to one URL by POST and classifies the answer as a
// notifier must: nil for a 2xx, a Permanent error when retrying cannot
// help, any other error otherwise. It is safe for concurrent use.
type Poster struct {
	url     *url.URL
	client  *http.Client
	timeout time.Duration
}

// excerptBytes bounds how much of a refusing answer's body an error
// quotes.
const excerptBytes = 512

// NewPoster checks rawURL and caFile and returns a Poster for them; each
// Post is bounded by timeout.
func NewPoster(rawURL, caFile string, timeout time.Duration) (*Poster, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		if u.Scheme != "https" {
			return nil, fmt.Errorf("ca_file is set but the url is not https://")
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", caFile)
		}
		// Only this CA: a private receiver's certificate is from a
		// private CA, and nothing else should be trusted for it.
		tr.TLSClientConfig.RootCAs = pool
	}
	return &Poster{
		url:     u,
		timeout: timeout,
		client: &http.Client{
			Transport: tr,
			// A redirected POST turns into a GET on most codes: follow
			// none, and report it, so the operator fixes the url.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// ParseURL checks a receiver's URL: http or https, a host, and no
// credentials (they would end up in errors and logs).
func ParseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("url is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse quotes the whole URL, which may hold a secret.
		return nil, errors.New("url is not a URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("url: want an https:// (or http://) URL, not %s:", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("url has no host")
	}
	if u.User != nil {
		return nil, fmt.Errorf("url %s holds credentials: send them in a header", u.Redacted())
	}
	return u, nil
}

// Host is what errors name of the URL: its host, never its path or query.
func (p *Poster) Host() string { return p.url.Host }

// Post sends body with header (Content-Type and the rest) and classifies
// the answer.
func (p *Poster) Post(ctx context.Context, body []byte, header http.Header) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url.String(), bytes.NewReader(body))
	if err != nil {
		return notifier.Permanent(fmt.Errorf("POST to %s: %w", p.Host(), scrub(err)))
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST to %s: %w", p.Host(), scrub(err))
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, excerptBytes))
	// Read a little more so that the connection can be reused; a receiver
	// that answers with megabytes does not get them read.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("POST to %s: %s%s", p.Host(), resp.Status, quote(excerpt))
	if Retryable(resp.StatusCode) {
		return err
	}
	return notifier.Permanent(err)
}

// Retryable tells whether an HTTP status that did not deliver may deliver
// on a later attempt: 408 (timeout), 429 (rate limited) and 5xx. A 3xx
// and any other 4xx is the request's fault, and will be again.
func Retryable(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// scrub drops the URL from a net/http error, keeping the cause: a
// *url.Error quotes the whole URL.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// quote renders a refusing answer's body for an error: one line, valid
// UTF-8, bounded.
func quote(b []byte) string {
	s := strings.Join(strings.Fields(string(bytes.ToValidUTF8(b, []byte("?")))), " ")
	if s == "" {
		return ""
	}
	if len(b) >= excerptBytes {
		s += " …"
	}
	return ": " + s
}
