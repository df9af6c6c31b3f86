package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/notifier"
)

// Name is the plugin's name.
const Name = "email"

// Defaults of the config.
const (
	DefaultPort        = 587
	DefaultTLSPort     = 465
	DefaultTimeout     = 30 * time.Second
	DefaultMaxMachines = 20
	DefaultSubject     = "[saltpeter] {{headline .}}"
)

// Notifier is the email notifier. It is safe for concurrent use: each
// Notify has its own connection.
type Notifier struct {
	log  hclog.Logger
	conf atomic.Pointer[config]
}

// New returns an email notifier that logs to log.
func New(log hclog.Logger) *Notifier {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Notifier{log: log}
}

var _ notifier.Notifier = (*Notifier)(nil)

type fileConfig struct {
	Host              string   `json:"host"`
	Port              *int     `json:"port"`
	StartTLS          *bool    `json:"starttls"`
	TLS               bool     `json:"tls"`
	Username          string   `json:"username"`
	Password          string   `json:"password"`
	PasswordFile      string   `json:"password_file"`
	InsecurePlainAuth bool     `json:"insecure_plain_auth"`
	From              string   `json:"from"`
	To                []string `json:"to"`
	SubjectTemplate   string   `json:"subject_template"`
	MaxMachines       *int     `json:"max_machines"`
	CAFile            string   `json:"ca_file"`
	Timeout           string   `json:"timeout"`
	HELO              string   `json:"helo"`
}

type config struct {
	host     string
	addr     string // host:port
	starttls bool
	implicit bool
	tls      *tls.Config

	username, password string
	insecureAuth       bool

	from        *mail.Address
	to          []*mail.Address
	subject     *template.Template
	maxMachines int
	timeout     time.Duration
	helo        string
}

// TemplateFuncs are the functions a subject template may call besides
// Go's built-ins: headline is what the default subject says of the event
// ("backup-db failed"), json renders a value as JSON.
var TemplateFuncs = template.FuncMap{
	"headline": Headline,
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

// Configure implements notifier.Notifier. It reaches no server.
func (n *Notifier) Configure(_ context.Context, raw []byte) error {
	c, err := parseConfig(raw)
	if err != nil {
		return fmt.Errorf("email notifier config: %w", err)
	}
	n.conf.Store(c)
	n.log.Debug("email configured", "server", c.addr, "starttls", c.starttls, "tls", c.implicit,
		"login", c.username != "", "recipients", len(c.to))
	return nil
}

func parseConfig(raw []byte) (*config, error) {
	var fc fileConfig
	if err := notifier.DecodeConfig(raw, &fc); err != nil {
		return nil, err
	}
	var errs []error
	c := &config{host: fc.Host, implicit: fc.TLS, starttls: !fc.TLS, insecureAuth: fc.InsecurePlainAuth,
		username: fc.Username, maxMachines: DefaultMaxMachines, timeout: DefaultTimeout, helo: fc.HELO}
	if fc.StartTLS != nil {
		switch {
		case *fc.StartTLS && fc.TLS:
			errs = append(errs, errors.New("starttls and tls: tls is TLS from the first byte, starttls an upgrade; set one"))
		default:
			c.starttls = *fc.StartTLS
		}
	}
	if c.host == "" {
		errs = append(errs, errors.New("host is required: the SMTP server's name"))
	} else if strings.ContainsAny(c.host, " :/@") {
		errs = append(errs, fmt.Errorf("host %q: want a host name or address alone (the port goes in port)", c.host))
	}
	port := DefaultPort
	if c.implicit {
		port = DefaultTLSPort
	}
	if fc.Port != nil {
		if port = *fc.Port; port <= 0 || port > 65535 {
			errs = append(errs, fmt.Errorf("port %d: want 1 to 65535", port))
		}
	}
	c.addr = net.JoinHostPort(c.host, strconv.Itoa(port))

	switch {
	case fc.Password != "" && fc.PasswordFile != "":
		errs = append(errs, errors.New("password and password_file: set one, not both"))
	case fc.PasswordFile != "":
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
	default:
		c.password = fc.Password
	}
	switch {
	case c.username == "" && (fc.Password != "" || fc.PasswordFile != ""):
		errs = append(errs, errors.New("a password without a username: set username too"))
	case c.username != "" && fc.Password == "" && fc.PasswordFile == "":
		errs = append(errs, errors.New("username without a password: set password_file (or password)"))
	case c.username != "" && !c.starttls && !c.implicit && !c.insecureAuth:
		errs = append(errs, errors.New("a login without TLS sends the password in the clear: use starttls or tls, or set insecure_plain_auth = true if you must"))
	}

	if fc.From == "" {
		errs = append(errs, errors.New(`from is required: the sender, such as "Saltpeter <cron@example.com>"`))
	} else if a, err := mail.ParseAddress(fc.From); err != nil {
		errs = append(errs, fmt.Errorf("from %q: %w", fc.From, err))
	} else {
		c.from = a
	}
	if len(fc.To) == 0 {
		errs = append(errs, errors.New("to is required: a list of recipients' addresses"))
	}
	for _, s := range fc.To {
		a, err := mail.ParseAddress(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("to %q: %w", s, err))
			continue
		}
		c.to = append(c.to, a)
	}

	subject := fc.SubjectTemplate
	if subject == "" {
		subject = DefaultSubject
	}
	tpl, err := template.New("subject_template").Funcs(TemplateFuncs).Option("missingkey=error").Parse(subject)
	if err != nil {
		errs = append(errs, err)
	}
	c.subject = tpl
	if fc.MaxMachines != nil {
		if c.maxMachines = *fc.MaxMachines; c.maxMachines < 0 {
			errs = append(errs, fmt.Errorf("max_machines %d: want 0 or more", c.maxMachines))
		}
	}
	if fc.Timeout != "" {
		d, err := time.ParseDuration(fc.Timeout)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("timeout: %w", err))
		case d <= 0:
			errs = append(errs, fmt.Errorf("timeout %q: want a positive duration", fc.Timeout))
		default:
			c.timeout = d
		}
	}
	if c.helo == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			c.helo = h
		} else {
			c.helo = "localhost"
		}
	}
	if strings.ContainsAny(c.helo, " \r\n") {
		errs = append(errs, fmt.Errorf("helo %q: want a host name", c.helo))
	}

	c.tls = &tls.Config{ServerName: c.host, MinVersion: tls.VersionTLS12}
	if fc.CAFile != "" {
		if !c.starttls && !c.implicit {
			errs = append(errs, errors.New("ca_file is set but neither starttls nor tls is"))
		}
		pem, err := os.ReadFile(fc.CAFile)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("ca_file: %w", err))
		case !pool.AppendCertsFromPEM(pem):
			errs = append(errs, fmt.Errorf("ca_file %s holds no PEM certificate", fc.CAFile))
		default:
			// Only this CA: a private mail server's certificate is from
			// a private CA, and nothing else should be trusted for it.
			c.tls.RootCAs = pool
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// Notify implements notifier.Notifier: one mail to every recipient.
func (n *Notifier) Notify(ctx context.Context, ev notifier.Event) error {
	c := n.conf.Load()
	if c == nil {
		return errors.New("email notifier: not configured")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	msg, err := c.compose(ev, time.Now())
	if err != nil {
		return fmt.Errorf("email %s: %w", ev.ID, err)
	}
	if err := c.send(ctx, msg); err != nil {
		return fmt.Errorf("email %s (attempt %d) through %s: %w", ev.ID, ev.Attempt, c.addr, err)
	}
	n.log.Debug("event mailed", "event_id", ev.ID, "kind", ev.Kind, "recipients", len(c.to))
	return nil
}
