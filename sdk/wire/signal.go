package wire

import "strings"

// signals are Linux's numbers; wrappers run on Linux targets.
var signals = map[string]int{
	"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5,
	"SIGABRT": 6, "SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10,
	"SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15,
	"SIGSTKFLT": 16, "SIGCHLD": 17, "SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20,
	"SIGTTIN": 21, "SIGTTOU": 22, "SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25,
	"SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29, "SIGPWR": 30,
	"SIGSYS": 31,
}

// SignalNumber maps a signal name ("SIGTERM", "TERM", "sigterm") to its
// Linux number.
func SignalNumber(name string) (int, bool) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	v, ok := signals[n]
	return v, ok
}

// SignalName maps a Linux signal number to its canonical name.
func SignalName(num int) string {
	for k, v := range signals {
		if v == num && k != "SIGIOT" {
			return k
		}
	}
	return ""
}

// CanonicalSignal returns the "SIGXXX" spelling of a signal name, and false
// when the name is unknown.
func CanonicalSignal(name string) (string, bool) {
	v, ok := SignalNumber(name)
	if !ok {
		return "", false
	}
	return SignalName(v), true
}
