// Command saltpeter is the core, its command line, and (re-executed as
// "saltpeter plugin KIND NAME") the built-in plugins.
package main

import (
	"fmt"
	"os"

	"github.com/saltpeter/saltpeter/core/cli"
	"github.com/saltpeter/saltpeter/core/gcfloor"
	"github.com/saltpeter/saltpeter/core/sysmon"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "serve" || os.Args[1] == "plugin") {
		// The long-running processes keep the runtime's monitor awake
		// (see core/sysmon): this re-executes the program in place, once.
		// Should that fail, the process runs as the runtime has it by
		// default, and says so where its log goes.
		if err := sysmon.Awake(); err != nil {
			fmt.Fprintf(os.Stderr, "saltpeter: %v; running with the runtime's defaults\n", err)
		}
		// Their collector waits for a heap worth collecting (see
		// core/gcfloor), unless GOGC says otherwise.
		gcfloor.Floor(gcfloor.Default)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
