// Command saltpeter is the core, its command line, and (re-executed as
// "saltpeter plugin KIND NAME") the built-in plugins.
package main

import (
	"os"

	"github.com/saltpeter/saltpeter/core/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
