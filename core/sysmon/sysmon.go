package sysmon

import (
	"os"
	"strings"
)

const (
	// EnvDeepSleep, set to 1, leaves the runtime's monitor as it is.
	EnvDeepSleep = "SALTPETER_SYSMON_DEEP_SLEEP"
	// envRestore carries, into the re-executed process, the GODEBUG to
	// put back: "=" and its value, or "-" when there was none.
	envRestore = "SALTPETER_SYSMON_GODEBUG"
)

// schedtraceMS is the schedtrace setting: its largest value, so that the
// summary it prints is as rare as it can be. Tests shorten it to see the
// setting take.
var schedtraceMS = "2147483647"

// restore puts GODEBUG back as the re-executing process had it, and
// reports whether this process is the re-executed one. The runtime read
// the setting as the process started and keeps it: only settings it
// reads atomically follow GODEBUG's changes, and schedtrace is not one.
func restore() bool {
	prev, ok := os.LookupEnv(envRestore)
	if !ok {
		return false
	}
	os.Unsetenv(envRestore)
	if v, had := strings.CutPrefix(prev, "="); had {
		os.Setenv("GODEBUG", v)
	} else {
		os.Unsetenv("GODEBUG")
	}
	return true
}

// wanted returns the environment to re-execute with, or nil when the
// monitor is to be left as it is.
func wanted(environ []string) []string {
	if os.Getenv(EnvDeepSleep) == "1" {
		return nil
	}
	godebug, had := os.LookupEnv("GODEBUG")
	for _, kv := range strings.Split(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(kv), "schedtrace=") {
			return nil // the operator's own setting
		}
	}
	prev := "-"
	if had {
		prev = "=" + godebug
	}
	setting := "schedtrace=" + schedtraceMS
	if godebug != "" {
		setting = godebug + "," + setting
	}
	env := make([]string, 0, len(environ)+2)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "GODEBUG=") && !strings.HasPrefix(kv, envRestore+"=") {
			env = append(env, kv)
		}
	}
	return append(env, "GODEBUG="+setting, envRestore+"="+prev)
}
