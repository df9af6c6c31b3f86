package config

import (
	"io"

	"github.com/hashicorp/hcl/v2"
)

// WriteDiagnostics prints diags for an operator, each with the source line
// under it, as `saltpeter validate` does. files is Config.Files.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	// Width 0: no wrapping, so that messages survive being piped to logs.
	return hcl.NewDiagnosticTextWriter(w, files, 0, false).WriteDiagnostics(diags)
}
