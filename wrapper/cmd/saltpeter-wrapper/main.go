package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/wire"
	"github.com/saltpeter/saltpeter/wrapper"
)

func main() { os.Exit(run()) }

func run() int {
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
	// ignores -env-stdin (its standard input is /dev/null).
	env := os.Environ()
	if *envStdin && !wrapper.Detached() {
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
	if !wrapper.Detached() {
		pid, err := wrapper.Detach(os.Args[1:], env, cfg.LogFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "saltpeter-wrapper: %v\n", err)
			return 1
		}
		fmt.Printf("%s pid=%d\n", wire.DetachedLine, pid)
		return 0
	}

	// Standard error is SP_WRAPPER_LOG or /dev/null: Detach saw to it.
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "saltpeter-wrapper",
		Level:      hclog.Info,
		JSONFormat: true,
		Output:     os.Stderr,
	}).With("version", wrapper.Version)
	if err := wrapper.Run(context.Background(), cfg, log); err != nil {
		log.Error("wrapper failed", "error", err)
		return 1
	}
	return 0
}
