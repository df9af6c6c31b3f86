package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/plugins/webhook"
	"github.com/saltpeter/saltpeter/sdk/notifier"
)

// Name is the plugin's name.
const Name = "slack"

// Defaults of the config.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMaxMachines = 5
)

// Notifier is the slack notifier. It is safe for concurrent use.
type Notifier struct {
	log  hclog.Logger
	conf atomic.Pointer[config]
}

// New returns a slack notifier that logs to log.
func New(log hclog.Logger) *Notifier {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Notifier{log: log}
}

var _ notifier.Notifier = (*Notifier)(nil)

type fileConfig struct {
	URL         string `json:"url"`
	URLFile     string `json:"url_file"`
	MaxMachines *int   `json:"max_machines"`
	Timeout     string `json:"timeout"`
	CAFile      string `json:"ca_file"`
}

type config struct {
	poster      *webhook.Poster
	maxMachines int
}

// Configure implements notifier.Notifier.
func (n *Notifier) Configure(_ context.Context, raw []byte) error {
	c, err := parseConfig(raw)
	if err != nil {
		return fmt.Errorf("slack notifier config: %w", err)
	}
	n.conf.Store(c)
	n.log.Debug("slack configured", "host", c.poster.Host(), "max_machines", c.maxMachines)
	return nil
}

func parseConfig(raw []byte) (*config, error) {
	var fc fileConfig
	if err := notifier.DecodeConfig(raw, &fc); err != nil {
		return nil, err
	}
	var errs []error
	c := &config{maxMachines: DefaultMaxMachines}
	if fc.MaxMachines != nil {
		if c.maxMachines = *fc.MaxMachines; c.maxMachines < 0 {
			errs = append(errs, fmt.Errorf("max_machines %d: want 0 or more", c.maxMachines))
		}
	}
	timeout := DefaultTimeout
	if fc.Timeout != "" {
		d, err := time.ParseDuration(fc.Timeout)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("timeout: %w", err))
		case d <= 0:
			errs = append(errs, fmt.Errorf("timeout %q: want a positive duration", fc.Timeout))
		default:
			timeout = d
		}
	}
	url := fc.URL
	switch {
	case fc.URL != "" && fc.URLFile != "":
		errs = append(errs, errors.New("url and url_file: set one, not both"))
	case fc.URLFile != "":
		b, err := os.ReadFile(fc.URLFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("url_file: %w", err))
			break
		}
		if url = strings.TrimSpace(string(b)); url == "" {
			errs = append(errs, fmt.Errorf("url_file %s is empty", fc.URLFile))
		}
	case fc.URL == "":
		errs = append(errs, errors.New("url (or url_file) is required: the Slack incoming webhook's URL"))
	}
	if url != "" {
		p, err := webhook.NewPoster(url, fc.CAFile, timeout)
		if err != nil {
			errs = append(errs, err)
		}
		c.poster = p
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// Notify implements notifier.Notifier: one message per event.
func (n *Notifier) Notify(ctx context.Context, ev notifier.Event) error {
	c := n.conf.Load()
	if c == nil {
		return errors.New("slack notifier: not configured")
	}
	body, err := json.Marshal(Compose(ev, c.maxMachines))
	if err != nil {
		return notifier.Permanent(fmt.Errorf("slack %s: encode message: %w", ev.ID, err))
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("User-Agent", "saltpeter-slack")
	if err := c.poster.Post(ctx, body, h); err != nil {
		return fmt.Errorf("slack %s (attempt %d): %w", ev.ID, ev.Attempt, err)
	}
	n.log.Debug("event delivered", "event_id", ev.ID, "kind", ev.Kind)
	return nil
}
