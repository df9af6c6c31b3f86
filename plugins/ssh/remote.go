package sshtarget

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// defaultWrapper is the wrapper a dispatch that names none runs: found on
// the remote PATH.
const defaultWrapper = "saltpeter-wrapper"

// shellQuote quotes s as one word for a POSIX shell (and csh and fish,
// which read '\” the same way).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// checkWrapperPath refuses a wrapper path the remote shell could not take
// as one plain word.
func checkWrapperPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty wrapper path")
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return fmt.Errorf("wrapper path %q holds a control character", p)
		}
	}
	return nil
}

// pgidLine prefixes the first line every remote command prints: the
// process group of the session (sshd makes each session's process a
// session leader), which a cancelled dispatch kills from a second
// session. SSH's own "signal" request would be simpler, but OpenSSH
// refuses it to root logins, to forced commands and before 7.9.
const pgidLine = "saltpeter-ssh: pgid "

// v2Command is the remote command for a protocol 2 wrapper: /bin/sh, so
// that what runs does not depend on the login shell, prints the pgid
// line and becomes the wrapper, which reads the dispatch environment from
// its standard input. The wrapper is $0, a word of its own.
func v2Command(wrapper string) string {
	return "exec /bin/sh -c " + shellQuote(`echo "`+pgidLine+`$$" && exec "$0" -env-stdin`) + " " + shellQuote(wrapper)
}

// killCommand ends the process group pgid, or the process when it leads
// none.
func killCommand(pgid int) string {
	return fmt.Sprintf("kill -KILL -- -%d 2>/dev/null || kill -KILL %d", pgid, pgid)
}

// v1Command runs the script v1Script writes on its standard input.
const v1Command = "exec /bin/sh -s"

// v1Started prefixes the line the protocol 1 script prints.
const v1Started = "saltpeter: started protocol 1 wrapper"

// v1Script is the shell script, fed to /bin/sh on standard input, that
// starts a protocol 1 wrapper with env as its environment: exported from
// single-quoted words, so no value is ever expanded, and on no command
// line. The wrapper runs in a session of its own (setsid; nohup where
// there is none), from /, with /dev/null for its standard streams, and
// nobody waits for it.
func v1Script(wrapper string, env map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(env))
	for k, v := range env {
		if !isShellName(k) {
			return nil, fmt.Errorf("dispatch variable %q is not a shell variable name, which a protocol 1 wrapper over ssh needs", k)
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("invalid dispatch variable %q", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(`echo "` + pgidLine + `$$" || exit 1` + "\n")
	fmt.Fprintf(&b, "w=%s\n", shellQuote(wrapper))
	// A path is checked as a file, a bare name looked up on PATH; a
	// relative path is made absolute before leaving the home directory.
	b.WriteString(`case $w in
*/*) [ -f "$w" ] && [ -x "$w" ] ;;
*) command -v "$w" >/dev/null 2>&1 ;;
esac || { printf '%s\n' "saltpeter: wrapper $w: not found or not executable" >&2; exit 127; }
case $w in /*) ;; */*) w=$PWD/$w ;; esac
cd / || exit 1
`)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(env[k]))
	}
	b.WriteString(`if command -v setsid >/dev/null 2>&1; then
	setsid "$w" </dev/null >/dev/null 2>&1 &
else
	nohup "$w" </dev/null >/dev/null 2>&1 &
fi
echo "` + v1Started + ` pid=$!"
`)
	return []byte(b.String()), nil
}

// isShellName reports whether s is a name sh can export.
func isShellName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}
