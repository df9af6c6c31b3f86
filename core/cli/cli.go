package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/pluginhost"
	"github.com/saltpeter/saltpeter/core/server"
	"github.com/saltpeter/saltpeter/plugins/builtin"
)

// Version is set at build time (-ldflags "-X ...cli.Version=...").
var Version = "dev"

const usage = `saltpeter: a distributed cron for fleets

Core:
  saltpeter serve    -config PATH   run the core
  saltpeter validate -config PATH   check a configuration, print its diagnostics
  saltpeter import [-timezone ZONE] [-o FILE] DIR   convert the old tool's YAML job files to HCL
  saltpeter version

Operator (talks to a core's HTTP API at -addr or SALTPETER_ADDR; the token,
sent as "Authorization: Bearer", comes from SALTPETER_TOKEN only):
  saltpeter jobs [-json]
  saltpeter job JOB [-json]                    settings, next fire times, runs going on
  saltpeter next JOB [-count N] [-json]
  saltpeter run JOB [-wait]                    prints the run id; -wait: its result, and
                                               exits with its status (below)
  saltpeter kill JOB|RUN [-machine M] [-signal SIG] [-grace D]
                                               a 26-character run id is a run, anything
                                               else a job; -job NAME / -run ID force it
  saltpeter signal RUN SIGNAL [-machine M]     e.g. SIGSTOP, SIGCONT; never SIGKILL
  saltpeter logs RUN [-machine M] [-f] [-stream S]
                                               several machines: lines prefixed "M | ";
                                               -f follows until every result is final
                                               ("output" is the older name)
  saltpeter enable JOB | disable JOB | reset JOB
  saltpeter runs [-job JOB] [-limit N] [-json]
  saltpeter run-status RUN
  saltpeter maintenance [-json]
  saltpeter maintenance set [-global] [-machines a,b]   replaces what is in force
  saltpeter maintenance reset                  back to the configuration's block
  saltpeter audit [-job J] [-by NAME] [-action A] [-before ID] [-limit N] [-json]
                                               operator actions, newest first

Exit status: 0 done, 1 failed (the message says why), 2 usage, 3 conflict
(409: overlap, already finished, maintenance). run -wait exits with the
run's status: 0 succeeded, 10 failed, 11 timeout, 12 killed, 13 lost,
14 not_started, 15 error, 16 cancelled, 17 skipped, 19 a status this
version does not know, 130 interrupted while waiting (the run goes on).
`

// Main runs the command line and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(rest, stderr)
	case "validate":
		return validate(rest, stdout, stderr)
	case "import":
		return cmdImport(rest, stdout, stderr)
	case "plugin":
		// Re-executed by the core's plugin host: serve one built-in.
		if len(rest) != 2 {
			fmt.Fprintln(stderr, "usage: saltpeter plugin KIND NAME (run by the core, not by hand)")
			return 2
		}
		if err := builtin.Serve(rest[0], rest[1]); err != nil {
			fmt.Fprintln(stderr, "saltpeter plugin:", err)
			return 1
		}
		return 0
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "saltpeter", Version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	if c, ok := clientCommands[cmd]; ok {
		return c(rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "saltpeter: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.hcl", "configuration file or folder of *.hcl files")
	level := fs.String("log-level", "info", "trace, debug, info, warn or error")
	json := fs.Bool("log-json", false, "log JSON lines instead of text")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "saltpeter", Level: hclog.LevelFromString(*level),
		Output: stderr, JSONFormat: *json})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, server.Options{ConfigPath: *path, Logger: log}); err != nil {
		log.Error("core failed", "error", err)
		return 1
	}
	return 0
}

func validate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.hcl", "configuration file or folder of *.hcl files")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	conf, diags := config.Load(*path)
	if !diags.HasErrors() {
		diags = append(diags, pluginhost.CheckBuiltinTargets(context.Background(), conf)...)
	}
	if len(diags) > 0 {
		var files = conf.Files
		_ = config.WriteDiagnostics(stderr, files, diags)
	}
	if diags.HasErrors() {
		return 1
	}
	fmt.Fprintf(stdout, "%s: configuration is valid (%d jobs)\n", *path, len(conf.Jobs))
	return 0
}
