package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/wire"
	"github.com/saltpeter/saltpeter/wrapper"
)

func main() { os.Exit(run()) }

func run() int {
	wrapper.Narrow()
	version := flag.Bool("version", false, "print the version and exit")
	envStdin := flag.Bool("env-stdin", false,
		"read the dispatch environment from standard input (KEY=VALUE records, each ended by a NUL byte, until EOF) instead of the process environment")
	flag.Parse()
	if *version {
		fmt.Println(wrapper.Version)
		return 0
	}

	// env is what the dispatch environment is read from, and what the
	// detached copy gets: it reads its configuration from there, and
	// ignores -env-stdin (its standard input is /dev/null). A wrapper that
	// detaches in place decides so from its own environment, which has no
	// dispatch variables when they come on standard input.
	inPlace := !wrapper.Detached() && wrapper.DetachedByTarget(os.Getenv)
	env := os.Environ()
	if *envStdin && !wrapper.Detached() {
		if inPlace {
			// Perhaps a spare, started before its dispatch: the wait
			// for it is the time to fault in the code its run takes.
			// Nothing is lost if it cannot.
			go func() { _, _ = wrapper.Prefault() }()
		}
		vars, err := wrapper.ReadEnv(os.Stdin)
		if err != nil {
			fmt.Fprintf(os.Stderr, "saltpeter-wrapper: -env-stdin: %v\n", err)
			return 2
		}
		env = wrapper.WithEnv(env, vars)
	}
	cfg, err := wrapper.ConfigFromEnv(wrapper.Getenv(env))
	if err != nil {
		fmt.Fprintf(os.Stderr, "saltpeter-wrapper: %v\n", err)
		return 2
	}
	switch {
	case wrapper.Detached():
	case inPlace:
		// The target did the detaching: this process runs the job, and
		// the line goes out before the run starts dialing. Its
		// environment is the one a detached copy would get, which is the
		// job's base.
		if *envStdin {
			wrapper.SetEnviron(env)
		}
		err := wrapper.DetachInPlace(cfg.LogFile, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "%s pid=%d\n", wire.DetachedLine, os.Getpid())
			return err
		})
		if err != nil {
			// On the target's standard error, or in the log once the
			// descriptors moved.
			fmt.Fprintf(os.Stderr, "saltpeter-wrapper: %v\n", err)
			return 1
		}
	default:
		pid, err := wrapper.Detach(os.Args[1:], env, cfg.LogFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "saltpeter-wrapper: %v\n", err)
			return 1
		}
		fmt.Printf("%s pid=%d\n", wire.DetachedLine, pid)
		return 0
	}

	// Standard error is SP_WRAPPER_LOG or /dev/null: Detach, or
	// DetachInPlace, saw to it. Without a log file nothing is formatted
	// for /dev/null: a short job's whole life is a few milliseconds, and
	// the first lines of JSON cost one of them.
	level := hclog.Info
	if cfg.LogFile == "" {
		level = hclog.Off
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "saltpeter-wrapper",
		Level:      level,
		JSONFormat: true,
		Output:     os.Stderr,
	}).With("version", wrapper.Version)
	if err := wrapper.Run(context.Background(), cfg, log); err != nil {
		log.Error("wrapper failed", "error", err)
		return 1
	}
	return 0
}
