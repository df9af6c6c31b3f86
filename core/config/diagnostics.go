package config

import (
	"fmt"
	"io"

	"github.com/hashicorp/hcl/v2"
)

// WriteDiagnostics prints diags for an operator, as `saltpeter validate`
// does: each with the source line under it (HCL's familiar layout), then
// one line per diagnostic in the FILE:LINE:COL form editors and grep
// understand.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	if len(diags) == 0 {
		return nil
	}
	// Width 0: no wrapping, so that messages survive being piped to logs.
	if err := hcl.NewDiagnosticTextWriter(w, files, 0, false).WriteDiagnostics(diags); err != nil {
		return fmt.Errorf("write diagnostics: %w", err)
	}
	errs := len(diags.Errs())
	if _, err := fmt.Fprintf(w, "%d error(s), %d warning(s):\n", errs, len(diags)-errs); err != nil {
		return fmt.Errorf("write diagnostics: %w", err)
	}
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		where := "(no position)"
		if d.Subject != nil {
			where = fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		if _, err := fmt.Fprintf(w, "%s: %s: %s\n", where, sev, d.Summary); err != nil {
			return fmt.Errorf("write diagnostics: %w", err)
		}
	}
	return nil
}
