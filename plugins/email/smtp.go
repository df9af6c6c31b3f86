package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/saltpeter/saltpeter/sdk/notifier"
)

// send delivers msg to every recipient in one SMTP session.
func (c *config) send(ctx context.Context, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	d := &net.Dialer{}
	var conn net.Conn
	var err error
	if c.implicit {
		conn, err = (&tls.Dialer{NetDialer: d, Config: c.tls}).DialContext(ctx, "tcp", c.addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", c.addr)
	}
	if err != nil {
		return classify(ctx, "connect", err)
	}
	defer conn.Close()
	// net/smtp takes no context: the deadline bounds every exchange, and
	// a cancellation breaks off the one under way.
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	s, err := smtp.NewClient(conn, c.host)
	if err != nil {
		return classify(ctx, "greeting", err)
	}
	defer s.Close()
	if err := s.Hello(c.helo); err != nil {
		return classify(ctx, "EHLO", err)
	}
	if c.starttls {
		if ok, _ := s.Extension("STARTTLS"); !ok {
			return notifier.Permanent(errors.New("the server does not offer STARTTLS (set starttls = false only for a server reached over a trusted network)"))
		}
		if err := s.StartTLS(c.tls); err != nil {
			return classify(ctx, "STARTTLS", err)
		}
	}
	if c.username != "" {
		ok, offered := s.Extension("AUTH")
		if !ok {
			return notifier.Permanent(errors.New("the server does not offer AUTH, and username is set"))
		}
		mechs := strings.Fields(strings.ToUpper(offered))
		var a smtp.Auth
		switch {
		case slices.Contains(mechs, "PLAIN"):
			a = &plainAuth{user: c.username, password: c.password, insecure: c.insecureAuth}
		case slices.Contains(mechs, "LOGIN"):
			a = &loginAuth{user: c.username, password: c.password, insecure: c.insecureAuth}
		default:
			return notifier.Permanent(fmt.Errorf("the server offers AUTH %s, and neither PLAIN nor LOGIN", offered))
		}
		if err := s.Auth(a); err != nil {
			return classify(ctx, "AUTH "+mechName(a), err)
		}
	}
	if err := s.Mail(c.from.Address); err != nil {
		return classify(ctx, "MAIL FROM", err)
	}
	for _, to := range c.to {
		if err := s.Rcpt(to.Address); err != nil {
			return classify(ctx, "RCPT TO "+to.Address, err)
		}
	}
	w, err := s.Data()
	if err != nil {
		return classify(ctx, "DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return classify(ctx, "message", err)
	}
	// The server's answer to the message's end is the delivery's.
	if err := w.Close(); err != nil {
		return classify(ctx, "message", err)
	}
	// The message is accepted: a failed QUIT changes nothing.
	_ = s.Quit()
	return nil
}

// classify wraps an SMTP step's error: a 5xx answer is Permanent, with
// the server's words; the end of ctx is the context's error; anything
// else (a 4xx, the network, TLS) may pass.
func classify(ctx context.Context, step string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w (%v)", step, ctx.Err(), err)
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		answer := fmt.Errorf("%s refused: the server answered %d %s", step, te.Code, te.Msg)
		if te.Code >= 500 {
			return notifier.Permanent(answer)
		}
		return answer
	}
	var refused *authRefused
	if errors.As(err, &refused) {
		return notifier.Permanent(fmt.Errorf("%s: %w", step, err))
	}
	return fmt.Errorf("%s: %w", step, err)
}

// authRefused is this side's refusal to send a password.
type authRefused struct{ why string }

func (e *authRefused) Error() string { return e.why }

var errCleartext = &authRefused{"the connection has no TLS, and insecure_plain_auth is not set: the password is not sent"}

// plainAuth is AUTH PLAIN (RFC 4616). net/smtp's own refuses any
// connection without TLS except to localhost, which insecure_plain_auth
// must be able to override, and there is no LOGIN there at all.
type plainAuth struct {
	user, password string
	insecure       bool
}

func (a *plainAuth) Start(s *smtp.ServerInfo) (string, []byte, error) {
	if !s.TLS && !a.insecure {
		return "", nil, errCleartext
	}
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.password), nil
}

func (a *plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("AUTH PLAIN: the server asked for more")
	}
	return nil, nil
}

// loginAuth is AUTH LOGIN (draft-murchison-sasl-login): the user name and
// the password, each when asked.
type loginAuth struct {
	user, password string
	insecure       bool
	step           int
}

func (a *loginAuth) Start(s *smtp.ServerInfo) (string, []byte, error) {
	if !s.TLS && !a.insecure {
		return "", nil, errCleartext
	}
	a.step = 0
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(_ []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.step++
	switch a.step {
	case 1:
		return []byte(a.user), nil
	case 2:
		return []byte(a.password), nil
	}
	return nil, errors.New("AUTH LOGIN: the server asked for more than a user name and a password")
}

func mechName(a smtp.Auth) string {
	if _, ok := a.(*plainAuth); ok {
		return "PLAIN"
	}
	return "LOGIN"
}
