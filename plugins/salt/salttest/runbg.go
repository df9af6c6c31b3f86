package salttest

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// What Salt's cmdmod (cmd.run_bg and the _run it calls) does with its
// arguments, as its documentation and code say.
const (
	// defaultShell stands for the minion's "shell" grain, which runs a
	// command when python_shell is true.
	defaultShell = "/bin/sh"
	// pythonDefPath is Python's os.defpath: where its subprocess looks a
	// command up when the environment has no PATH.
	pythonDefPath = "/bin:/usr/bin"
)

// localeVars are set to "C", unless given, when reset_system_locale is
// true (its default).
var localeVars = []string{
	"LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE", "LC_MONETARY", "LC_MESSAGES", "LC_PAPER",
	"LC_NAME", "LC_ADDRESS", "LC_TELEPHONE", "LC_MEASUREMENT", "LC_IDENTIFICATION", "LANGUAGE",
}

// runBg is cmd.run_bg on a minion: the command split by shell rules
// unless python_shell, the environment built from env, clean_env and
// reset_system_locale, no standard input or output of its own, not
// waited for. A failure is returned as the minion returns one: a string.
func (s *Server) runBg(arg []any, kwarg map[string]any) Run {
	kw := maps.Clone(kwarg)
	if kw == nil {
		kw = map[string]any{}
	}
	if len(arg) > 0 {
		if _, dup := kw["cmd"]; dup {
			return Run{Failure: "Passed invalid arguments: run_bg() got multiple values for argument 'cmd'"}
		}
		if len(arg) > 1 {
			return Run{Failure: "salttest: positional arguments of cmd.run_bg beyond cmd are not implemented"}
		}
		kw["cmd"] = arg[0]
	}
	if _, ok := kw["stdin"]; ok {
		// run_bg passes stdin=None to _run itself, so one from the
		// caller is one too many.
		return Run{Failure: "Passed invalid arguments: _run() got multiple values for keyword argument 'stdin'"}
	}
	cmd, ok := kw["cmd"].(string)
	if !ok {
		return Run{Failure: "Passed invalid arguments: run_bg() missing 1 required positional argument: 'cmd'"}
	}

	// A remote call (one with a jid) defaults python_shell to true.
	pythonShell, err := boolArg(kw, "python_shell", true)
	if err != nil {
		return Run{Failure: err.Error()}
	}
	cleanEnv, err := boolArg(kw, "clean_env", false)
	if err != nil {
		return Run{Failure: err.Error()}
	}
	resetLocale, err := boolArg(kw, "reset_system_locale", true)
	if err != nil {
		return Run{Failure: err.Error()}
	}
	env := map[string]string{}
	switch e := kw["env"].(type) {
	case nil:
	case map[string]any:
		for k, v := range e {
			sv, ok := v.(string)
			if !ok {
				// subprocess refuses a value that is not a string.
				return Run{Failure: fmt.Sprintf("The minion function caused an exception: TypeError: expected str, bytes or os.PathLike object, not %T", v)}
			}
			env[k] = sv
		}
	default:
		// _parse_env drops an env that is neither a dict nor a list.
	}
	if resetLocale {
		for _, k := range localeVars {
			if _, ok := env[k]; !ok {
				env[k] = "C"
			}
		}
	}
	runEnv := env
	if !cleanEnv {
		runEnv = map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			runEnv[k] = v
		}
		maps.Copy(runEnv, env)
	}
	if _, ok := env["NOTIFY_SOCKET"]; !ok {
		delete(runEnv, "NOTIFY_SOCKET")
	}

	// The default is the home of the user the minion runs as: here, the
	// test's.
	cwd, _ := kw["cwd"].(string)
	if cwd == "" {
		cwd, _ = os.UserHomeDir()
		if cwd == "" {
			cwd = "/"
		}
	}
	run := Run{Env: runEnv, Cwd: cwd}
	if fi, err := os.Stat(cwd); !filepath.IsAbs(cwd) || err != nil || !fi.IsDir() {
		run.Failure = fmt.Sprintf("ERROR: Specified cwd '%s' either not absolute or does not exist", cwd)
		return run
	}
	if pythonShell {
		run.Argv = []string{defaultShell, "-c", cmd}
	} else {
		run.Argv, err = shlexSplit(cmd)
		if err != nil {
			run.Failure = "The minion function caused an exception: ValueError: " + err.Error()
			return run
		}
		if len(run.Argv) == 0 {
			run.Failure = "The minion function caused an exception: IndexError: list index out of range"
			return run
		}
	}

	if !s.cfg.Exec {
		s.mu.Lock()
		s.pidSeq++
		run.PID = s.pidSeq
		s.mu.Unlock()
		return run
	}
	s.start(&run, pythonShell)
	return run
}

// start starts run's process on this machine, or sets its failure as
// Salt words it: "Unable to run command …", quoting the whole context of
// the call, environment included.
func (s *Server) start(run *Run, pythonShell bool) {
	fail := func(err error) {
		run.Failure = fmt.Sprintf("ERROR: Unable to run command '%s' with the context '%s', reason: %s",
			pyRepr(run.Argv), contextRepr(run, pythonShell), oserror(err, run.Argv[0]))
	}
	dirs := pythonDefPath
	if p, ok := run.Env["PATH"]; ok {
		dirs = p
	}
	exe, err := lookPath(run.Argv[0], dirs)
	if err != nil {
		fail(err)
		return
	}
	env := make([]string, 0, len(run.Env))
	for k, v := range run.Env {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	// Standard input and output are the minion's own, /dev/null under an
	// init system; nothing reads them.
	c := &exec.Cmd{Path: exe, Args: run.Argv, Env: env, Dir: run.Cwd}
	if err := c.Start(); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		fail(err)
		return
	}
	run.PID = c.Process.Pid
	done := make(chan struct{})
	s.mu.Lock()
	s.procs[run.PID] = done
	s.running[run.PID] = c.Process
	s.mu.Unlock()
	go func() {
		_ = c.Wait()
		s.mu.Lock()
		delete(s.running, run.PID)
		s.mu.Unlock()
		close(done)
	}()
}

// lookPath finds name as Python's subprocess does: as given when it has
// a slash, else in dirs.
func lookPath(name, dirs string) (string, error) {
	check := func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return syscall.ENOENT
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return syscall.EACCES
		}
		return nil
	}
	if strings.Contains(name, "/") {
		return name, check(name)
	}
	var first error = syscall.ENOENT
	for _, d := range filepath.SplitList(dirs) {
		p := filepath.Join(d, name)
		err := check(p)
		if err == nil {
			return p, nil
		}
		if err == syscall.EACCES {
			first = err
		}
	}
	return "", first
}

// oserror words err as Python's OSError does.
func oserror(err error, name string) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	msg := errno.Error()
	if msg != "" {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	return fmt.Sprintf("[Errno %d] %s: %s", int(errno), msg, pyRepr(name))
}

func boolArg(kw map[string]any, name string, def bool) (bool, error) {
	v, ok := kw[name]
	if !ok || v == nil {
		return def, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("salttest: %s=%v: only booleans are implemented", name, v)
	}
	return b, nil
}

// contextRepr is the context _run quotes in its error: what it was to
// hand subprocess.
func contextRepr(run *Run, pythonShell bool) string {
	parts := []string{
		"'cwd': " + pyRepr(run.Cwd),
		"'shell': " + pyRepr(pythonShell),
		"'env': " + pyRepr(run.Env),
		"'stdin': None", "'stdout': None", "'stderr': None",
		"'with_communicate': False", "'timeout': None", "'bg': True",
	}
	if pythonShell {
		parts = append(parts, "'executable': "+pyRepr(defaultShell))
	}
	parts = append(parts, "'close_fds': True")
	return "{" + strings.Join(parts, ", ") + "}"
}

// pyRepr writes v as Python's repr would, near enough.
func pyRepr(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case string:
		r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\t", `\t`, "\r", `\r`)
		return "'" + r.Replace(v) + "'"
	case int:
		return strconv.Itoa(v)
	case []string:
		parts := make([]string, len(v))
		for i, s := range v {
			parts[i] = pyRepr(s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]string:
		keys := slices.Sorted(maps.Keys(v))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = pyRepr(k) + ": " + pyRepr(v[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// shlexSplit splits s as Python's shlex.split does (POSIX mode, no
// comments), which Salt uses on a command when python_shell is false:
// blanks separate words; single quotes keep everything; double quotes
// keep everything but a backslash before " or \; a backslash outside
// quotes keeps the next character.
func shlexSplit(s string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
		quote  byte // 0, '\'' or '"'
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch quote {
		case '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\'):
				i++
				cur.WriteByte(s[i])
			default:
				cur.WriteByte(c)
			}
		default:
			switch c {
			case ' ', '\t', '\r', '\n':
				if inWord {
					words = append(words, cur.String())
					cur.Reset()
					inWord = false
				}
			case '\'', '"':
				quote = c
				inWord = true
			case '\\':
				if i+1 == len(s) {
					return nil, errors.New("No escaped character")
				}
				i++
				cur.WriteByte(s[i])
				inWord = true
			default:
				cur.WriteByte(c)
				inWord = true
			}
		}
	}
	if quote != 0 {
		return nil, errors.New("No closing quotation")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
