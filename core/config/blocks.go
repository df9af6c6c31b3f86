package config

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Defaults of the core block.
const (
	DefaultListen            = "127.0.0.1:8080"
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultHeartbeatTimeout  = 30 * time.Second
	DefaultConnectDeadline   = 2 * time.Minute
)

var coreSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "listen"}, {Name: "advertise"}, {Name: "tls_cert"}, {Name: "tls_key"}, {Name: "wrapper_ca_file"},
	{Name: "data_dir"}, {Name: "secret_file"}, {Name: "legacy_wrappers"},
	{Name: "heartbeat_timeout"}, {Name: "heartbeat_interval"}, {Name: "connect_deadline"},
	{Name: "api_tokens"}, {Name: "metrics_per_machine"}, {Name: "metrics_max_machines"},
}}

// coreAttrs keeps the core attributes that later checks point at.
type coreAttrs struct {
	block                               *hcl.Block
	heartbeatTimeout, heartbeatInterval *hcl.Attribute
}

func defaultCore() Core {
	return Core{
		Listen:            DefaultListen,
		HeartbeatTimeout:  DefaultHeartbeatTimeout,
		HeartbeatInterval: DefaultHeartbeatInterval,
		ConnectDeadline:   DefaultConnectDeadline,
		MetricsPerMachine: true,
	}
}

func (l *loader) decodeCore(b *hcl.Block) {
	c := &l.cfg.Core
	attrs := l.content(b.Body, coreSchema).Attributes
	l.coreAttrs.block = b

	if a := l.str(attrs, "listen", &c.Listen); a != nil {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			l.attrError(a, "Invalid listen address", fmt.Sprintf("listen takes host:port, such as %q: %v.", DefaultListen, err))
		}
	}
	if a := l.strList(attrs, "advertise", &c.Advertise); a != nil {
		for _, u := range c.Advertise {
			p, err := url.Parse(u)
			if err != nil || (p.Scheme != "ws" && p.Scheme != "wss") || p.Host == "" {
				l.attrError(a, "Invalid advertise URL", fmt.Sprintf("advertise lists the URLs wrappers dial, such as \"ws://10.0.0.5:8080\" or \"wss://core.example.com\"; %q is not one.", u))
			}
		}
	}
	cert := l.str(attrs, "tls_cert", &c.TLSCert)
	key := l.str(attrs, "tls_key", &c.TLSKey)
	if (c.TLSCert == "") != (c.TLSKey == "") {
		given := cert
		if given == nil {
			given = key
		}
		if given != nil {
			l.attrError(given, "Incomplete TLS settings", "tls_cert and tls_key go together: set both to serve https and wss, or neither.")
		}
	}
	if a := l.str(attrs, "wrapper_ca_file", &c.WrapperCAFile); a != nil && c.TLSCert == "" {
		l.attrError(a, "wrapper_ca_file without TLS", "wrapper_ca_file is the CA wrappers check the core's certificate with; it needs tls_cert and tls_key, or wrappers dial ws:// and check nothing.")
	}
	l.str(attrs, "data_dir", &c.DataDir)
	l.str(attrs, "secret_file", &c.SecretFile)
	l.boolean(attrs, "legacy_wrappers", &c.LegacyWrappers)
	l.coreAttrs.heartbeatTimeout = l.positiveDuration(attrs, "heartbeat_timeout", &c.HeartbeatTimeout)
	l.coreAttrs.heartbeatInterval = l.positiveDuration(attrs, "heartbeat_interval", &c.HeartbeatInterval)
	l.positiveDuration(attrs, "connect_deadline", &c.ConnectDeadline)
	l.boolean(attrs, "metrics_per_machine", &c.MetricsPerMachine)
	l.count(attrs, "metrics_max_machines", &c.MetricsMaxMachines)
	if a := attrs["api_tokens"]; a != nil {
		c.APITokens = l.decodeTokens(a)
	}
}

func (l *loader) finishCore(base string) {
	c := &l.cfg.Core
	if c.DataDir == "" {
		// Absolute, so that the default does not move with the working
		// directory of whoever starts the core.
		dir, err := filepath.Abs(filepath.Join(base, "data"))
		if err != nil {
			dir = filepath.Join(base, "data")
		}
		c.DataDir = dir
	}
	if c.SecretFile == "" {
		c.SecretFile = filepath.Join(c.DataDir, "secret")
	}
	// Wrappers beat every interval; a timeout under two intervals declares
	// a healthy wrapper lost after one late beat.
	if c.HeartbeatTimeout > 0 && c.HeartbeatInterval > 0 && c.HeartbeatTimeout < 2*c.HeartbeatInterval {
		detail := fmt.Sprintf("heartbeat_timeout (%s) must be at least twice heartbeat_interval (%s), so that one late heartbeat does not declare a machine lost.", c.HeartbeatTimeout, c.HeartbeatInterval)
		switch ca := l.coreAttrs; {
		case ca.heartbeatTimeout != nil:
			l.attrError(ca.heartbeatTimeout, "Heartbeat timeout too short", detail)
		case ca.heartbeatInterval != nil:
			l.attrError(ca.heartbeatInterval, "Heartbeat timeout too short", detail)
		case ca.block != nil:
			l.errorAt(ca.block.DefRange, "Heartbeat timeout too short", detail)
		}
	}
}

var tokenKeys = map[string]bool{"name": true, "role": true, "sha256": true}

func (l *loader) decodeTokens(a *hcl.Attribute) []APIToken {
	items, diags := hcl.ExprList(a.Expr)
	if diags.HasErrors() {
		l.attrError(a, "Invalid api_tokens", "api_tokens is a list of objects such as { name = \"ops\", role = \"operate\", sha256 = \"…\" }.")
		return nil
	}
	var tokens []APIToken
	first := map[string]hcl.Range{}
	for _, item := range items {
		pairs, diags := hcl.ExprMap(item)
		if diags.HasErrors() {
			l.errorAt(item.Range(), "Invalid API token", "Each API token is an object such as { name = \"ops\", role = \"operate\", sha256 = \"…\" }.")
			continue
		}
		var tok APIToken
		vals := map[string]hcl.Expression{}
		for _, kv := range pairs {
			var key string
			if diags := decodeExpr(kv.Key, &key); diags.HasErrors() {
				l.add(diags)
				continue
			}
			switch {
			case !tokenKeys[key]:
				l.errorAt(kv.Key.Range(), "Unsupported API token attribute", fmt.Sprintf("An API token has name, role and sha256; %q is not one of them.", key))
				continue
			case vals[key] != nil:
				l.errorAt(kv.Key.Range(), "Duplicate API token attribute", fmt.Sprintf("%s is given twice.", key))
				continue
			}
			vals[key] = kv.Value
		}
		valid := true
		for _, key := range []string{"name", "role", "sha256"} {
			expr := vals[key]
			if expr == nil {
				l.errorAt(item.Range(), "Incomplete API token", fmt.Sprintf("An API token needs %s.", key))
				valid = false
				continue
			}
			var v string
			if diags := decodeExpr(expr, &v); diags.HasErrors() {
				l.add(diags)
				valid = false
				continue
			}
			switch key {
			case "name":
				tok.Name = v
				if v == "" {
					l.errorAt(expr.Range(), "Invalid API token name", "An API token's name must not be empty: it is how logs and the audit name who acted.")
					valid = false
				} else if prev, dup := first[v]; dup {
					l.errorAt(expr.Range(), "Duplicate API token name", fmt.Sprintf("An API token named %q is already declared at %s.", v, at(prev)))
					valid = false
				} else {
					first[v] = expr.Range()
				}
			case "role":
				tok.Role = v
				if v != RoleRead && v != RoleOperate {
					l.errorAt(expr.Range(), "Invalid API token role", fmt.Sprintf("role must be %q or %q, not %q.", RoleRead, RoleOperate, v))
					valid = false
				}
			case "sha256":
				tok.SHA256 = strings.ToLower(v)
				if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
					l.errorAt(expr.Range(), "Invalid API token hash", "sha256 is the token's SHA-256 as 64 hexadecimal characters (sha256sum prints it), never the token itself.")
					valid = false
				}
			}
		}
		if valid {
			tokens = append(tokens, tok)
		}
	}
	return tokens
}

// Store kinds.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
	StoreMemory   = "memory"
)

// Defaults of a store block.
const (
	DefaultRetention           = 30 * 24 * time.Hour
	DefaultMaxOutputPerMachine = 64 << 20
	// MinMaxOutputPerMachine keeps a head and a tail of at least a full
	// output chunk each as chunks were (32 KiB), below which a cap could not
	// be held. A wrapper now sends up to wire.MaxOutputChunk in one; the
	// minimum stays so that a configuration that was valid stays valid,
	// and under a cap that small a machine keeps its head chunks and its
	// newest (see store.ToDrop).
	MinMaxOutputPerMachine = 64 << 10
)

var storeSchemas = map[string]*hcl.BodySchema{
	StoreSQLite:   {Attributes: []hcl.AttributeSchema{{Name: "path"}, {Name: "retention"}, {Name: "max_output_per_machine"}, {Name: "synchronous"}}},
	StorePostgres: {Attributes: []hcl.AttributeSchema{{Name: "dsn"}, {Name: "retention"}, {Name: "max_output_per_machine"}}},
	StoreMemory:   {Attributes: []hcl.AttributeSchema{{Name: "retention"}, {Name: "max_output_per_machine"}}},
}

func (l *loader) decodeStore(b *hcl.Block) {
	s := &Store{Kind: b.Labels[0], Retention: DefaultRetention, MaxOutputPerMachine: DefaultMaxOutputPerMachine}
	schema, ok := storeSchemas[s.Kind]
	if !ok {
		l.errorAt(b.LabelRanges[0], "Unknown store kind", fmt.Sprintf("The store is %s, not %q.", orList([]string{StoreSQLite, StorePostgres, StoreMemory}), s.Kind))
		return
	}
	attrs := l.content(b.Body, schema).Attributes
	l.str(attrs, "path", &s.Path)
	l.oneOf(attrs, "synchronous", &s.Synchronous, []string{"normal", "full"})
	if a := l.str(attrs, "dsn", &s.DSN); s.Kind == StorePostgres && s.DSN == "" {
		if a != nil {
			l.attrError(a, "Missing dsn", "store \"postgres\" needs dsn, such as \"postgres://saltpeter@db/saltpeter\".")
		} else {
			l.errorAt(b.DefRange, "Missing dsn", "store \"postgres\" needs dsn, such as \"postgres://saltpeter@db/saltpeter\".")
		}
	}
	l.positiveDuration(attrs, "retention", &s.Retention)
	if a := l.size(attrs, "max_output_per_machine", &s.MaxOutputPerMachine); a != nil && s.MaxOutputPerMachine < MinMaxOutputPerMachine {
		l.attrError(a, "Output cap too small", fmt.Sprintf("max_output_per_machine is at least 64KiB (it keeps a head and a tail of whole output chunks of up to 32KiB), not %d bytes.", s.MaxOutputPerMachine))
	}
	l.cfg.Store = s
}

var maintenanceSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "global"}, {Name: "machines"}}}

func (l *loader) decodeMaintenance(b *hcl.Block) {
	attrs := l.content(b.Body, maintenanceSchema).Attributes
	l.boolean(attrs, "global", &l.cfg.Maintenance.Global)
	l.strList(attrs, "machines", &l.cfg.Maintenance.Machines)
}

// Plugin kinds.
const (
	KindTarget   = "target"
	KindNotifier = "notifier"
	KindStore    = "store"
)

var pluginKinds = []string{KindTarget, KindNotifier, KindStore}

var pluginSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "path"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "config"}},
}

func (l *loader) decodePlugin(b *hcl.Block) {
	p := Plugin{Kind: b.Labels[0], Name: b.Labels[1], Range: b.DefRange, Config: json.RawMessage("{}")}
	known := false
	for _, k := range pluginKinds {
		known = known || p.Kind == k
	}
	if !known {
		l.errorAt(b.LabelRanges[0], "Unknown plugin kind", fmt.Sprintf("A plugin's kind is %s, not %q.", orList(pluginKinds), p.Kind))
	}
	if !validName(p.Name) {
		l.errorAt(b.LabelRanges[1], "Invalid plugin name", nameRule)
	}
	for _, other := range l.cfg.Plugins {
		if other.Kind == p.Kind && other.Name == p.Name {
			l.errorAt(b.LabelRanges[1], "Duplicate plugin", fmt.Sprintf("plugin %q %q is already configured at %s.", p.Kind, p.Name, at(other.Range)))
			return
		}
	}
	c := l.content(b.Body, pluginSchema)
	l.str(c.Attributes, "path", &p.Path)
	if cb := l.single(c.Blocks, "config", "A plugin"); cb != nil {
		p.Config = l.jsonBody(cb.Body)
		if p.Kind == KindNotifier {
			// One plugin serves many notifier blocks, one process each,
			// each with its own config: a config here would be nobody's.
			l.errorAt(cb.DefRange, "Config in a notifier plugin block",
				fmt.Sprintf("plugin \"notifier\" %q takes only a path: each notifier block that uses it has its own config block.", p.Name))
		}
	}
	if known {
		l.cfg.Plugins = append(l.cfg.Plugins, p)
	}
}

var notifierSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "plugin"}, {Name: "attempts"}, {Name: "backoff"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "config"}},
}

func (l *loader) decodeNotifier(b *hcl.Block) {
	n := Notifier{Name: b.Labels[0], Range: b.DefRange, Config: json.RawMessage("{}"),
		Attempts: DefaultNotifierAttempts, Backoff: DefaultNotifierBackoff}
	if !validName(n.Name) {
		l.errorAt(b.LabelRanges[0], "Invalid notifier name", nameRule)
	}
	for _, other := range l.cfg.Notifiers {
		if other.Name == n.Name {
			l.errorAt(b.LabelRanges[0], "Duplicate notifier", fmt.Sprintf("A notifier named %q is already declared at %s.", n.Name, at(other.Range)))
			return
		}
	}
	c := l.content(b.Body, notifierSchema)
	missing := fmt.Sprintf("notifier %q needs plugin, the notifier plugin that delivers it, such as plugin = \"webhook\".", n.Name)
	if c.Attributes["plugin"] == nil {
		l.errorAt(b.DefRange, "Missing notifier plugin", missing)
	} else if a := l.str(c.Attributes, "plugin", &n.Plugin); a != nil && n.Plugin == "" {
		l.attrError(a, "Missing notifier plugin", missing)
	} else if a != nil {
		l.notifierPlugins = append(l.notifierPlugins, a)
	}
	if a := l.count(c.Attributes, "attempts", &n.Attempts); a != nil && n.Attempts < 1 {
		l.attrError(a, "Invalid attempts", fmt.Sprintf("notifier %q: attempts must be at least 1 (the first delivery counts).", n.Name))
	}
	l.positiveDuration(c.Attributes, "backoff", &n.Backoff)
	if cb := l.single(c.Blocks, "config", "A notifier"); cb != nil {
		n.Config = l.jsonBody(cb.Body)
	}
	l.cfg.Notifiers = append(l.cfg.Notifiers, n)
}
