package importer

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// saltTemplate is printed commented out: the salt target is built in, so
// the jobs validate without it, but they run only once salt-api is
// configured, and the importer cannot know the master's address or
// credentials. A live block with made-up values would also clash with the
// operator's own plugin "target" "salt" block in another file.
const saltTemplate = `# These jobs run through Salt, as they did in the old tool. Configure the
# salt-api once, in this file or another of the configuration, by removing
# the leading "# " below and filling in your master's values:
#
# plugin "target" "salt" {
#   config {
#     url           = "https://salt-master:8000"
#     username      = "saltpeter"
#     password_file = "/etc/saltpeter/salt-password"
#     eauth         = "pam"
#   }
# }
`

func (c *converter) render(dir string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Imported by `saltpeter import` from the old Saltpeter's YAML files in %s.\n", oneLine(dir))
	b.WriteString("# Comments mark each field whose meaning did not carry over exactly.\n\n")
	b.WriteString(saltTemplate)
	if m := c.maint; m != nil {
		fmt.Fprintf(&b, "\n# From saltpeter_maintenance in %s. The API's maintenance changes win over this block.\n", oneLine(m.file))
		comments(&b, "", m.comments)
		b.WriteString("maintenance {\n")
		fmt.Fprintf(&b, "  global   = %t\n", m.global)
		quoted := make([]string, len(m.machines))
		for i, s := range m.machines {
			quoted[i] = quote(s)
		}
		fmt.Fprintf(&b, "  machines = [%s]\n}\n", strings.Join(quoted, ", "))
	}
	file := ""
	for _, j := range c.jobs {
		if j.file != file {
			file = j.file
			fmt.Fprintf(&b, "\n# ---- From %s\n", oneLine(file))
			comments(&b, "", c.notes[file])
		}
		b.WriteString("\n")
		comments(&b, "", j.comments)
		fmt.Fprintf(&b, "job %s {\n", quote(j.name))
		for _, it := range j.items {
			comments(&b, "  ", it.comments)
			for _, line := range strings.Split(it.text, "\n") {
				b.WriteString("  " + line + "\n")
			}
		}
		b.WriteString("}\n")
	}
	// Files whose only content was notes (saltpeter_config alone), in
	// name order so that a re-import gives the same bytes.
	var noted []string
	for f := range c.notes {
		if !c.hasJobs(f) {
			noted = append(noted, f)
		}
	}
	sort.Strings(noted)
	for _, f := range noted {
		fmt.Fprintf(&b, "\n# ---- From %s\n", oneLine(f))
		comments(&b, "", c.notes[f])
	}
	// Format aligns the "=" of each block as hclfmt would.
	return hclwrite.Format([]byte(b.String()))
}

func (c *converter) hasJobs(file string) bool {
	for _, j := range c.jobs {
		if j.file == file {
			return true
		}
	}
	return false
}

func comments(b *strings.Builder, indent string, lines []string) {
	for _, l := range lines {
		b.WriteString(indent + "# " + oneLine(l) + "\n")
	}
}

// oneLine keeps text taken from the old files from ending a comment early.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}

// quote writes s as an HCL string, escaping "${" and "%{" so that a shell
// command's ${VAR} stays literal instead of becoming an HCL template.
func quote(s string) string {
	return string(hclwrite.TokensForValue(cty.StringVal(s)).Bytes())
}
