package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/notifier"
)

// Name is the plugin's name.
const Name = "webhook"

// DefaultTimeout bounds one delivery attempt when the config sets none.
const DefaultTimeout = 10 * time.Second

// The headers every request carries.
const (
	HeaderEventID   = "X-Saltpeter-Event-Id"
	HeaderSignature = "X-Saltpeter-Signature"
)

// Notifier is the webhook notifier. It is safe for concurrent use, and
// Configure may replace the config while deliveries are in flight (they
// finish with the config they started with).
type Notifier struct {
	log  hclog.Logger
	conf atomic.Pointer[config]
}

// New returns a webhook notifier that logs to log.
func New(log hclog.Logger) *Notifier {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Notifier{log: log}
}

var _ notifier.Notifier = (*Notifier)(nil)

// fileConfig is the notifier block's config as the operator writes it.
type fileConfig struct {
	URL          string            `json:"url"`
	BodyTemplate string            `json:"body_template"`
	ContentType  string            `json:"content_type"`
	Secret       string            `json:"secret"`
	SecretFile   string            `json:"secret_file"`
	Headers      map[string]string `json:"headers"`
	Timeout      string            `json:"timeout"`
	CAFile       string            `json:"ca_file"`
}

// config is the checked configuration.
type config struct {
	poster      *Poster
	body        *template.Template // nil: the event's JSON
	contentType string
	secret      []byte // nil: unsigned
	headers     http.Header
}

// Configure implements notifier.Notifier.
func (n *Notifier) Configure(_ context.Context, raw []byte) error {
	c, err := parseConfig(raw)
	if err != nil {
		return fmt.Errorf("webhook notifier config: %w", err)
	}
	n.conf.Store(c)
	n.log.Debug("webhook configured", "host", c.poster.Host(), "signed", c.secret != nil, "templated", c.body != nil)
	return nil
}

// TemplateFuncs are the functions a body template may call besides Go's
// built-ins: json renders a value as JSON (a string with its quotes and
// escapes, ready to sit in a JSON body), runURL the event's run link.
var TemplateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"runURL": func(ev notifier.Event) string { return ev.RunURL() },
}

func parseConfig(raw []byte) (*config, error) {
	var fc fileConfig
	if err := notifier.DecodeConfig(raw, &fc); err != nil {
		return nil, err
	}
	var errs []error
	timeout, err := parseDuration("timeout", fc.Timeout, DefaultTimeout)
	if err != nil {
		errs = append(errs, err)
	}
	c := &config{contentType: fc.ContentType, headers: http.Header{}}
	if c.contentType == "" {
		c.contentType = "application/json"
	}
	if c.poster, err = NewPoster(fc.URL, fc.CAFile, timeout); err != nil {
		errs = append(errs, err)
	}
	if fc.BodyTemplate != "" {
		if c.body, err = template.New("body_template").Funcs(TemplateFuncs).Option("missingkey=error").Parse(fc.BodyTemplate); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case fc.Secret != "" && fc.SecretFile != "":
		errs = append(errs, errors.New("secret and secret_file: set one, not both"))
	case fc.Secret != "":
		c.secret = []byte(fc.Secret)
	case fc.SecretFile != "":
		b, err := os.ReadFile(fc.SecretFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("secret_file: %w", err))
		case strings.TrimSpace(string(b)) == "":
			errs = append(errs, fmt.Errorf("secret_file %s is empty", fc.SecretFile))
		default:
			// Files end in a newline that is no part of the secret.
			c.secret = []byte(strings.TrimSpace(string(b)))
		}
	}
	for k, v := range fc.Headers {
		ck := http.CanonicalHeaderKey(k)
		switch {
		case k == "" || strings.ContainsAny(k, " \t\r\n:"):
			errs = append(errs, fmt.Errorf("headers: %q is not a header name", k))
		case strings.ContainsAny(v, "\r\n"):
			errs = append(errs, fmt.Errorf("headers: %s holds a line break", ck))
		case ck == HeaderEventID || ck == HeaderSignature || ck == "Content-Type" || ck == "Content-Length" || ck == "Host":
			errs = append(errs, fmt.Errorf("headers: %s is set by the notifier", ck))
		default:
			c.headers.Set(ck, v)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// Notify implements notifier.Notifier: one POST of the event.
func (n *Notifier) Notify(ctx context.Context, ev notifier.Event) error {
	c := n.conf.Load()
	if c == nil {
		return errors.New("webhook notifier: not configured")
	}
	body, err := c.render(ev)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", ev.ID, err)
	}
	h := c.headers.Clone()
	h.Set("Content-Type", c.contentType)
	h.Set("User-Agent", "saltpeter-webhook")
	h.Set(HeaderEventID, ev.ID)
	if c.secret != nil {
		h.Set(HeaderSignature, Sign(c.secret, body))
	}
	if err := c.poster.Post(ctx, body, h); err != nil {
		return fmt.Errorf("webhook %s (attempt %d): %w", ev.ID, ev.Attempt, err)
	}
	n.log.Debug("event delivered", "event_id", ev.ID, "kind", ev.Kind, "host", c.poster.Host())
	return nil
}

func (c *config) render(ev notifier.Event) ([]byte, error) {
	if c.body == nil {
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, notifier.Permanent(fmt.Errorf("encode event: %w", err))
		}
		return b, nil
	}
	var buf bytes.Buffer
	if err := c.body.Execute(&buf, ev); err != nil {
		// The same event renders the same way on every attempt.
		return nil, notifier.Permanent(fmt.Errorf("render body_template: %w", err))
	}
	return buf.Bytes(), nil
}

// Sign returns the X-Saltpeter-Signature value of body under secret:
// "sha256=" and the hex HMAC-SHA256.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// parseDuration reads a duration setting ("10s", "1m30s"); empty is def.
func parseDuration(name, s string, def time.Duration) (time.Duration, error) {
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
