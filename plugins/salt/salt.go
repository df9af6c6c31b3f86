package salt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/launch"
	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Name is the plugin's name.
const Name = "salt"

const (
	// defaultTgtType is Salt's own default target type.
	defaultTgtType = "glob"
	// firstPoll and maxPoll space the reads of a job's returns: quick at
	// first, when most minions answer, then no more than once a second.
	firstPoll = 100 * time.Millisecond
	maxPoll   = time.Second
	// maxFailure bounds a minion's error text in a Dispatch error.
	maxFailure = 500
)

// Target is the salt target. It is safe for concurrent use.
type Target struct {
	log hclog.Logger
	// now is the clock token expiry is judged by; tests replace it.
	now func() time.Time

	mu sync.RWMutex
	st *state // nil until configured
}

// state is what Configure sets up; a new Configure replaces it whole.
type state struct {
	cfg    config
	client *client
	silent *silentSet
}

// New returns a salt target that logs to log.
func New(log hclog.Logger) *Target {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Target{log: log, now: time.Now}
}

var _ target.Target = (*Target)(nil)

// Configure takes the plugin block's config. It does not contact
// salt-api: a master down when the core starts must not keep the core
// from starting; the first Resolve logs in.
func (t *Target) Configure(_ context.Context, raw []byte) error {
	cfg, err := parseConfig(raw)
	if err != nil {
		return fmt.Errorf("salt target config: %w", err)
	}
	st := &state{cfg: cfg, client: newClient(cfg, t.log, t.now), silent: newSilentSet(maxRemembered)}
	t.mu.Lock()
	old := t.st
	t.st = st
	t.mu.Unlock()
	if old != nil {
		old.client.close()
	}
	if cfg.url.Scheme == "http" {
		t.log.Warn("salt-api is reached over plain http: the password and tokens cross the network in the clear", "url", cfg.url.String())
	}
	t.log.Info("configured", "url", cfg.url.String(), "username", cfg.username, "eauth", cfg.eauth,
		"ping_timeout_ms", cfg.pingTimeout.Milliseconds(), "return_timeout_ms", cfg.returnTimeout.Milliseconds())
	return nil
}

func (t *Target) state() (*state, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.st == nil {
		return nil, errors.New("the salt target is not configured")
	}
	return t.st, nil
}

// targetArgs is a job's target block: any Salt target.
type targetArgs struct {
	Tgt     string
	TgtType string
}

// key names the target of a job, for the memory of silent minions.
func (a targetArgs) key(job string) string {
	return job + "\x00" + a.TgtType + "\x00" + a.Tgt
}

// parseArgs decodes a job's target block. tgt_type is passed to Salt as
// written: every Salt target type works, and Salt says what it makes of
// it.
func parseArgs(raw []byte) (targetArgs, error) {
	var m map[string]json.RawMessage
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			return targetArgs{}, fmt.Errorf("target block is not a JSON object: %w", err)
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	a := targetArgs{TgtType: defaultTgtType}
	for _, k := range keys {
		var dst *string
		switch k {
		case "tgt":
			dst = &a.Tgt
		case "tgt_type":
			dst = &a.TgtType
		default:
			return targetArgs{}, fmt.Errorf("unknown argument %q: the salt target takes tgt and tgt_type", k)
		}
		if err := json.Unmarshal(m[k], dst); err != nil {
			return targetArgs{}, fmt.Errorf("%s must be a string, not %s", k, clip(string(m[k])))
		}
	}
	if a.Tgt == "" {
		return targetArgs{}, errors.New(`tgt is required: a Salt target such as "web*" (with tgt_type, default glob)`)
	}
	if a.TgtType == "" {
		return targetArgs{}, errors.New("tgt_type is empty: leave it out for glob, or name a Salt target type")
	}
	return a, nil
}

// CheckArgs implements target.ArgsChecker: the block's tgt and tgt_type,
// checked without asking Salt anything.
func (t *Target) CheckArgs(_ context.Context, raw []byte) error {
	_, err := parseArgs(raw)
	return err
}

var _ target.ArgsChecker = (*Target)(nil)

// Resolve publishes test.ping to the target and returns every minion the
// master expected to answer or that answered, sorted. The ones that did
// not answer within ping_timeout are remembered, for Dispatch to refuse.
func (t *Target) Resolve(ctx context.Context, req target.ResolveRequest) ([]string, error) {
	st, err := t.state()
	if err != nil {
		return nil, err
	}
	args, err := parseArgs(req.Args)
	if err != nil {
		return nil, fmt.Errorf("job %s: salt target block: %w", req.Job, err)
	}
	machines, err := t.resolve(ctx, st, req.Job, args)
	if err != nil {
		return nil, fmt.Errorf("job %s: resolve salt target %q (%s): %w", req.Job, args.Tgt, args.TgtType, err)
	}
	return machines, nil
}

func (t *Target) resolve(ctx context.Context, st *state, job string, args targetArgs) ([]string, error) {
	log := t.log.With("job", job, "tgt", args.Tgt, "tgt_type", args.TgtType)
	pub, ok, err := st.client.publish(ctx, lowstate{Client: "local_async", Tgt: args.Tgt, TgtType: args.TgtType, Fun: "test.ping"})
	if err != nil {
		return nil, fmt.Errorf("publish test.ping: %w", err)
	}
	if !ok {
		st.silent.remember(args.key(job), nil)
		return nil, errors.New("no minion matched")
	}
	log = log.With("jid", pub.JID)
	expected := map[string]bool{}
	for _, m := range pub.Minions {
		expected[m] = true
	}
	start := time.Now()
	rets, err := t.awaitReturns(ctx, st, pub.JID, st.cfg.pingTimeout, func(rets map[string]json.RawMessage) bool {
		for m := range expected {
			if _, ok := rets[m]; !ok {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("read the returns of test.ping (salt job %s): %w", pub.JID, err)
	}

	all := make([]string, 0, len(expected)+len(rets))
	silent := map[string]string{}
	for m := range expected {
		all = append(all, m)
		if _, ok := rets[m]; !ok {
			silent[m] = fmt.Sprintf("minion %s matched %s (%s) but did not answer test.ping within %s (salt job %s)",
				m, args.Tgt, args.TgtType, st.cfg.pingTimeout, pub.JID)
		}
	}
	// A minion that answered without being expected (the master's view
	// of the target lagging) is as good as any.
	for m := range rets {
		if !expected[m] {
			all = append(all, m)
		}
	}
	if len(all) == 0 {
		// A master of syndics publishes without knowing who will
		// answer: nobody did.
		st.silent.remember(args.key(job), nil)
		return nil, fmt.Errorf("no minion matched (salt job %s: none expected, none answered within %s)", pub.JID, st.cfg.pingTimeout)
	}
	slices.Sort(all)
	st.silent.remember(args.key(job), silent)

	if len(silent) > 0 {
		names := make([]string, 0, len(silent))
		for m := range silent {
			names = append(names, m)
		}
		slices.Sort(names)
		log.Warn("minions matched but did not answer test.ping; they will be recorded as unreachable",
			"silent", strings.Join(names, " "), "ping_timeout_ms", st.cfg.pingTimeout.Milliseconds())
	}
	log.Info("resolved", "minions", len(all), "answered", len(all)-len(silent), "silent", len(silent),
		"duration_ms", time.Since(start).Milliseconds())
	return all, nil
}

// awaitReturns reads job jid's returns until enough says so or wait has
// passed, and returns the last ones read.
func (t *Target) awaitReturns(ctx context.Context, st *state, jid string, wait time.Duration, enough func(map[string]json.RawMessage) bool) (map[string]json.RawMessage, error) {
	deadline := time.Now().Add(wait)
	interval := firstPoll
	for {
		rets, err := st.client.returns(ctx, jid)
		if err != nil {
			return nil, err
		}
		left := time.Until(deadline)
		if enough(rets) || left <= 0 {
			return rets, nil
		}
		timer := time.NewTimer(min(interval, left))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		interval = min(2*interval, maxPoll)
	}
}

// Dispatch starts the wrapper on one minion with cmd.run_bg, the dispatch
// environment in its env argument.
func (t *Target) Dispatch(ctx context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	res, err := t.dispatch(ctx, req)
	if err != nil {
		// Salt's own errors may quote the environment it was given.
		return res, redact(fmt.Errorf("dispatch %s to %s: %w", req.RunID, req.Machine, err), req.Env[wire.EnvToken])
	}
	return res, nil
}

func (t *Target) dispatch(ctx context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	if err := ctx.Err(); err != nil {
		return target.DispatchResult{}, err
	}
	st, err := t.state()
	if err != nil {
		return target.DispatchResult{}, err
	}
	args, err := parseArgs(req.Args)
	if err != nil {
		return target.DispatchResult{}, fmt.Errorf("salt target block: %w", err)
	}
	if req.Machine == "" {
		return target.DispatchResult{}, errors.New("no machine named")
	}
	if why, ok := st.silent.reason(args.key(req.Job), req.Machine); ok {
		return target.DispatchResult{}, fmt.Errorf("%s: %w", why, target.ErrUnreachable)
	}
	switch req.Protocol {
	case 0, wire.ProtocolV1, wire.ProtocolV2:
		// cmd.run_bg starts both alike: a v2 wrapper detaches itself, a
		// v1 wrapper is left running by the minion, as it always was.
	default:
		return target.DispatchResult{}, fmt.Errorf("unsupported wrapper protocol %d", req.Protocol)
	}
	env, err := wrapperEnv(req.Env, st.cfg.minionPath)
	if err != nil {
		return target.DispatchResult{}, err
	}
	wrapper := req.WrapperPath
	if wrapper == "" {
		wrapper = launch.DefaultWrapper
	}

	log := t.log.With("job", req.Job, "run_id", req.RunID, "machine", req.Machine, "wrapper", wrapper, "protocol", req.Protocol)
	low := lowstate{
		Client: "local_async",
		// A list target names the minion exactly: a glob would read
		// the metacharacters an id may hold.
		Tgt:     []string{req.Machine},
		TgtType: "list",
		Fun:     "cmd.run_bg",
		// Keyword arguments only: a positional "a=b" would be read as
		// one, and the environment must be kept apart from the command.
		Kwarg: map[string]any{
			"cmd": shellWord(wrapper),
			"env": env,
			// The wrapper gets the dispatch environment, not the
			// minion's; Salt's C locale variables are not added either.
			"clean_env":           true,
			"reset_system_locale": false,
			// cmd.run_bg runs remote commands through a shell unless
			// told otherwise.
			"python_shell": false,
			"cwd":          "/",
		},
	}
	pub, ok, err := st.client.publish(ctx, low)
	if err != nil {
		return target.DispatchResult{}, fmt.Errorf("publish cmd.run_bg: %w", err)
	}
	if !ok || !slices.Contains(pub.Minions, req.Machine) {
		return target.DispatchResult{}, fmt.Errorf("the salt master knows no minion %s (no accepted key): %w", req.Machine, target.ErrUnreachable)
	}
	log = log.With("jid", pub.JID)
	log.Debug("cmd.run_bg published, awaiting the minion's return")

	rets, err := t.awaitReturns(ctx, st, pub.JID, st.cfg.returnTimeout, func(rets map[string]json.RawMessage) bool {
		_, ok := rets[req.Machine]
		return ok
	})
	if err != nil {
		// The job is out: the wrapper may still start, and the core,
		// which gave up on it, will refuse it.
		return target.DispatchResult{}, fmt.Errorf("await the return of cmd.run_bg (salt job %s): %w", pub.JID, err)
	}
	ret, ok := rets[req.Machine]
	if !ok {
		// Not an error: the minion answered test.ping a moment ago and
		// may be slow; if the wrapper never connects, the core's connect
		// deadline records the machine as not started.
		log.Warn("no return from the minion yet; the core's connect deadline decides", "return_timeout_ms", st.cfg.returnTimeout.Milliseconds())
		return target.DispatchResult{Detail: fmt.Sprintf("salt job %s accepted: cmd.run_bg %s on %s, no return within %s",
			pub.JID, wrapper, req.Machine, st.cfg.returnTimeout)}, nil
	}
	pid, failure, err := runBgReturn(ret)
	if err != nil {
		return target.DispatchResult{}, fmt.Errorf("salt job %s: %w", pub.JID, err)
	}
	if failure != "" {
		return target.DispatchResult{}, fmt.Errorf("cmd.run_bg of %s failed on %s (salt job %s): %s",
			wrapper, req.Machine, pub.JID, clipFailure(redactString(failure, req.Env[wire.EnvToken])))
	}
	log.Info("wrapper started through salt", "pid", pid)
	return target.DispatchResult{Detail: fmt.Sprintf("salt job %s: cmd.run_bg started %s on %s, pid=%d",
		pub.JID, wrapper, req.Machine, pid)}, nil
}

// wrapperEnv is the wrapper's whole environment on the minion: the
// dispatch environment, and PATH (minionPath) unless it has its own.
func wrapperEnv(dispatch map[string]string, minionPath string) (map[string]string, error) {
	env := make(map[string]string, len(dispatch)+1)
	env["PATH"] = minionPath
	for k, v := range dispatch {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("invalid dispatch variable %q", k)
		}
		env[k] = v
	}
	return env, nil
}

// runBgReturn reads a minion's return of cmd.run_bg: {"pid": N}, or the
// text of the error the minion met (Salt returns a failed execution as a
// string, "ERROR: …").
func runBgReturn(ret json.RawMessage) (pid int64, failure string, err error) {
	var s string
	if json.Unmarshal(ret, &s) == nil {
		if s == "" {
			s = "(empty return)"
		}
		return 0, s, nil
	}
	var v struct {
		PID *float64 `json:"pid"`
	}
	if err := json.Unmarshal(ret, &v); err != nil || v.PID == nil || *v.PID <= 0 || *v.PID != float64(int64(*v.PID)) {
		return 0, "", fmt.Errorf("unexpected return of cmd.run_bg: %s", clipFailure(string(ret)))
	}
	return int64(*v.PID), "", nil
}

// clipFailure shortens a minion's error text. Salt's "Unable to run
// command" quotes the whole context of the call, environment included:
// the reason at its end is what matters.
func clipFailure(s string) string {
	if i := strings.Index(s, " with the context '"); i >= 0 {
		if j := strings.LastIndex(s, "', reason: "); j > i {
			s = s[:i] + s[j+1:]
		}
	}
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > maxFailure {
		s = string(r[:maxFailure]) + " …"
	}
	return s
}

// shellWord quotes s for Salt, which splits a command by POSIX shell
// rules (Python's shlex.split) when python_shell is false. Plain paths
// stay as they are, for the minion's log.
func shellWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@%,=", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// redact returns err with secret cut out of its text. errors.Is still
// finds ErrUnreachable and the context's errors in it, and nothing else:
// the wrapped errors' texts hold the secret.
func redact(err error, secret string) error {
	msg := redactString(err.Error(), secret)
	var kinds []error
	for _, k := range []error{target.ErrUnreachable, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, k) {
			kinds = append(kinds, k)
		}
	}
	return &redacted{msg: msg, kinds: kinds}
}

func redactString(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

type redacted struct {
	msg   string
	kinds []error
}

func (e *redacted) Error() string   { return e.msg }
func (e *redacted) Unwrap() []error { return e.kinds }
