package sshtarget

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// config is the plugin block's config.
type config struct {
	User          string `json:"user"`
	KeyFile       string `json:"key_file"`
	KnownHosts    string `json:"known_hosts"`
	DeployWrapper bool   `json:"deploy_wrapper"`
	Port          int    `json:"port"`
}

const configKeys = "user, key_file, known_hosts, deploy_wrapper, port"

// settings are a checked config, ready to dial with.
type settings struct {
	user       string
	signer     ssh.Signer
	keyFile    string
	knownHosts string
	deploy     bool
	port       int
}

// parseConfig decodes and checks the plugin block's config.
func parseConfig(b []byte) (*settings, error) {
	var c config
	if err := decodeStrict(b, &c, configKeys); err != nil {
		return nil, err
	}
	s := &settings{user: c.User, keyFile: c.KeyFile, knownHosts: c.KnownHosts, deploy: c.DeployWrapper, port: c.Port}
	var errs []error
	if s.user == "" {
		u, err := user.Current()
		if err != nil {
			errs = append(errs, fmt.Errorf("user is not set and the current user is unknown: %w", err))
		} else {
			s.user = u.Username
		}
	}
	switch {
	case s.port == 0:
		s.port = 22
	case s.port < 1 || s.port > 65535:
		errs = append(errs, fmt.Errorf("port %d is not a TCP port", s.port))
	}
	if c.KeyFile == "" {
		errs = append(errs, errors.New("key_file is required: the private key to log in with"))
	} else if signer, err := readKey(c.KeyFile); err != nil {
		errs = append(errs, err)
	} else {
		s.signer = signer
	}
	if c.KnownHosts == "" {
		errs = append(errs, errors.New("known_hosts is required: host keys are always checked"))
	} else if _, err := knownhosts.New(c.KnownHosts); err != nil {
		errs = append(errs, fmt.Errorf("known_hosts: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func readKey(path string) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var pass *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &pass):
		return nil, fmt.Errorf("key_file %s is protected by a passphrase: the ssh target needs a key without one", path)
	case err != nil:
		return nil, fmt.Errorf("key_file %s: %w", path, err)
	}
	return signer, nil
}

// decodeStrict decodes the JSON object b into v, refusing keys v does not
// have (known lists those it has, for the error) and anything after the
// object. Nothing, or null, is an empty object.
func decodeStrict(b []byte, v any, known string) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case err == nil:
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Errorf("%s: want a %s, not a %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.As(err, &typ):
		return fmt.Errorf("not a JSON object but a %s", typ.Value)
	case errors.As(err, &syn):
		return fmt.Errorf("not a JSON object: %w", err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return fmt.Errorf("unknown setting %s (the settings are %s)", name, known)
	default:
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more than one JSON value")
	}
	return nil
}

// jsonKind names a Go kind the way the HCL author sees it.
func jsonKind(k string) string {
	switch k {
	case "int", "int64", "uint16":
		return "number"
	case "bool":
		return "bool (true or false)"
	case "slice":
		return "list"
	}
	return k
}

// hostAddr turns a machine id (host, host:port, [v6]:port or a bare v6
// address) into the address to dial, with port for none.
func hostAddr(machine string, port int) (string, error) {
	if machine == "" {
		return "", errors.New("an empty host")
	}
	for _, r := range machine {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '@' || r == '/' {
			return "", fmt.Errorf("%q is not a host or host:port", machine)
		}
	}
	if h, p, err := net.SplitHostPort(machine); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || h == "" {
			return "", fmt.Errorf("%q is not a host or host:port", machine)
		}
		return net.JoinHostPort(h, p), nil
	}
	h := machine
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if h == "" || strings.ContainsAny(h, "[]") || (strings.Count(h, ":") == 1) {
		return "", fmt.Errorf("%q is not a host or host:port", machine)
	}
	return net.JoinHostPort(h, strconv.Itoa(port)), nil
}

// parseHosts decodes a job's target block: {"hosts": [...]}, each a host
// or host:port, duplicates dropped, order kept.
func parseHosts(b []byte) ([]string, error) {
	var args struct {
		Hosts *[]string `json:"hosts"`
	}
	if err := decodeStrict(b, &args, "hosts"); err != nil {
		return nil, err
	}
	if args.Hosts == nil {
		return nil, errors.New(`hosts is required: a list of "host" or "host:port"`)
	}
	if len(*args.Hosts) == 0 {
		return nil, errors.New("hosts is empty: name at least one host")
	}
	var hosts []string
	seen := map[string]bool{}
	for i, h := range *args.Hosts {
		if _, err := hostAddr(h, 22); err != nil {
			return nil, fmt.Errorf("hosts[%d]: %w", i, err)
		}
		if !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	return hosts, nil
}
