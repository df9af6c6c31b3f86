package config

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/saltpeter/saltpeter/core/schedule"
)

// Config is a whole, validated configuration.
type Config struct {
	Core        Core
	Store       *Store
	Plugins     []Plugin
	Notifiers   []Notifier
	Maintenance Maintenance
	// Jobs in name order.
	Jobs []*Job
	// Files holds the parsed sources, for printing diagnostics with the
	// source line under them.
	Files map[string]*hcl.File
}

// ReleaseSyntax drops the syntax trees Files holds, keeping each file's
// source: diagnostics still print with the source line under them, but
// without the context line naming the block they are in ("in job ...").
// A core calls it once it has checked a configuration it will run, which
// it keeps as long as it runs: the trees are most of its size (10,000 job
// blocks: 22 of 32 MB).
func (c *Config) ReleaseSyntax() {
	for name, f := range c.Files {
		if f != nil {
			c.Files[name] = &hcl.File{Bytes: f.Bytes}
		}
	}
}

// StoreOrDefault returns the store block, or the one the core uses when
// there is none: SQLite in the data directory, with the default retention
// and output cap.
func (c *Config) StoreOrDefault() Store {
	if c.Store != nil {
		return *c.Store
	}
	return Store{Kind: StoreSQLite, Path: filepath.Join(c.Core.DataDir, "saltpeter.db"),
		Retention: DefaultRetention, MaxOutputPerMachine: DefaultMaxOutputPerMachine}
}

// Job returns the named job, or nil.
func (c *Config) Job(name string) *Job {
	// The runner asks per firing and per run's end, thousands of times a
	// second with thousands of jobs: Load keeps Jobs in name order, so a
	// binary search finds it; a list made otherwise (tests) is scanned.
	if i, ok := slices.BinarySearchFunc(c.Jobs, name, func(j *Job, n string) int { return strings.Compare(j.Name, n) }); ok {
		return c.Jobs[i]
	}
	for _, j := range c.Jobs {
		if j.Name == name {
			return j
		}
	}
	return nil
}

// Core is the core block.
type Core struct {
	Listen          string
	Advertise       []string
	TLSCert, TLSKey string
	// WrapperCAFile is where, on the target machines, the CA file lies
	// that wrappers check the core's certificate with (SP_CA_FILE); empty:
	// the machines' system pool.
	WrapperCAFile    string
	DataDir          string
	SecretFile       string
	LegacyWrappers   bool
	HeartbeatTimeout time.Duration
	// HeartbeatInterval is the interval sent to v2 wrappers in the spec
	// message (default 5s); HeartbeatTimeout is at least twice it.
	HeartbeatInterval time.Duration
	ConnectDeadline   time.Duration
	APITokens         []APIToken
	// MetricsPerMachine keeps per-(job, machine) series at /metrics
	// (default true); MetricsMaxMachines bounds them (0: the metrics
	// package's default, 10000).
	MetricsPerMachine  bool
	MetricsMaxMachines int
}

// API token roles.
const (
	RoleRead    = "read"
	RoleOperate = "operate"
)

// APIToken is one configured operator token; only its SHA-256 is kept.
type APIToken struct {
	Name   string
	Role   string
	SHA256 string // lower-case hex
}

// Store is the store block.
type Store struct {
	Kind                string
	Path                string
	DSN                 string
	Retention           time.Duration
	MaxOutputPerMachine int64
	// Synchronous is SQLite's commit durability: "normal" (survives the
	// process dying; "" is the same) or "full" (survives a power cut too).
	Synchronous string
}

// Plugin is a plugin "KIND" "NAME" block.
type Plugin struct {
	Kind string
	Name string
	Path string // empty: built-in
	// Config is the config block rendered as JSON, for the plugin to
	// decode against its own schema.
	Config json.RawMessage
	Range  hcl.Range
}

// Notifier is a notifier block.
type Notifier struct {
	Name   string
	Plugin string
	Config json.RawMessage
	// Attempts bounds the deliveries tried for one notification (default
	// 10); Backoff is the wait after the first failed one (default 30s),
	// doubled after each further one, up to an hour.
	Attempts int
	Backoff  time.Duration
	Range    hcl.Range
}

// Notifier delivery defaults.
const (
	DefaultNotifierAttempts = 10
	DefaultNotifierBackoff  = 30 * time.Second
)

// Maintenance is the starting maintenance state.
type Maintenance struct {
	Global   bool
	Machines []string
}

// Overlap policies.
const (
	OverlapSkip    = "skip"
	OverlapAllow   = "allow"
	OverlapQueue   = "queue"
	OverlapReplace = "replace"
)

// Job is one job block, with defaults applied.
type Job struct {
	Name     string
	Group    string
	Schedule string
	// ParsedSchedule is Schedule parsed by schedule.Parse and bound by
	// schedule.WithDST to Location, DSTGap and DSTRepeat: its Next gives
	// the job's slots, policies applied, from a time in any location.
	ParsedSchedule schedule.Schedule
	Timezone       string
	Location       *time.Location
	Enabled        bool

	Command string
	Cwd     string
	User    string
	Env     map[string]string

	Target             Target
	NumberOfTargets    int
	BatchSize          int
	Success            string
	AbortAfterFailures int

	Timeout         time.Duration // 0: none
	SoftTimeout     time.Duration
	NoOutputTimeout time.Duration
	Overlap         string
	Jitter          time.Duration
	CatchUp         string
	DSTGap          string
	DSTRepeat       string
	KeepChildren    bool

	Kill    Kill
	Retry   *Retry
	Expect  *Expect
	Notify  []Notify
	Wrapper Wrapper

	// Range is where the job block was declared.
	Range hcl.Range
}

// Target names the target plugin and carries its per-job arguments.
type Target struct {
	Plugin string
	// Args is the target block's body rendered as a JSON object.
	Args  json.RawMessage
	Range hcl.Range
}

// Kill is the job's termination policy.
type Kill struct {
	Signal string        // canonical "SIGTERM" form
	Grace  time.Duration // default 5s
}

// Retry is the optional retry block.
type Retry struct {
	Attempts int
	Backoff  time.Duration
}

// Expect is the optional dead-man block.
type Expect struct {
	MaxGap time.Duration
}

// Notify is one notify "NAME" block.
type Notify struct {
	Notifier string
	On       []string
	Range    hcl.Range
}

// Wrapper names the wrapper program and its protocol.
type Wrapper struct {
	Path     string // empty: the saltpeter-wrapper found by the target
	Protocol int    // 1 or 2; default 2
}
