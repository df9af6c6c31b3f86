package cli

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/saltpeter/saltpeter/core/importer"
)

// cmdImport converts the old Python Saltpeter's YAML job files to HCL.
func cmdImport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tz := fs.String("timezone", "", "IANA zone the old server ran in, for jobs without utc: true")
	out := fs.String("o", "", "write the HCL to this file instead of stdout")
	if fs.Parse(args) != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: saltpeter import [-timezone ZONE] [-o FILE] DIR")
		return 2
	}
	res, err := importer.Dir(fs.Arg(0), importer.Options{Timezone: *tz})
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "saltpeter import: warning:", w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "saltpeter import: nothing written:\n%v\n", err)
		return 1
	}
	if *out == "" {
		if _, err := stdout.Write(res.HCL); err != nil {
			fmt.Fprintln(stderr, "saltpeter import: write HCL:", err)
			return 1
		}
		return 0
	}
	if err := os.WriteFile(*out, res.HCL, 0o644); err != nil {
		fmt.Fprintln(stderr, "saltpeter import: write HCL:", err)
		return 1
	}
	fmt.Fprintf(stderr, "saltpeter import: wrote %d jobs to %s; check it with saltpeter validate -config %s\n", res.Jobs, *out, *out)
	return 0
}
