package config

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// decoder collects every diagnostic instead of stopping at the first, so
// that an operator fixes a whole configuration in one pass.
type decoder struct {
	diags hcl.Diagnostics
}

func (d *decoder) add(diags hcl.Diagnostics) { d.diags = append(d.diags, diags...) }

func (d *decoder) errorAt(subject hcl.Range, summary, detail string) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: subject.Ptr(),
	})
}

// attrError points at the value, with the whole "name = value" line as
// context, which is how hcl's own decoders report a bad value.
func (d *decoder) attrError(a *hcl.Attribute, summary, detail string) {
	d.attrDiag(hcl.DiagError, a, summary, detail)
}

// attrWarning is for settings that are valid but cannot do what the
// operator presumably meant.
func (d *decoder) attrWarning(a *hcl.Attribute, summary, detail string) {
	d.attrDiag(hcl.DiagWarning, a, summary, detail)
}

func (d *decoder) attrDiag(sev hcl.DiagnosticSeverity, a *hcl.Attribute, summary, detail string) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: sev, Summary: summary, Detail: detail,
		Subject: a.Expr.Range().Ptr(), Context: a.Range.Ptr(),
	})
}

// content decodes body against schema; unknown attributes and blocks, and
// attributes given twice, come back as diagnostics from hcl itself.
func (d *decoder) content(body hcl.Body, schema *hcl.BodySchema) *hcl.BodyContent {
	c, diags := body.Content(schema)
	d.add(diags)
	if c == nil {
		c = &hcl.BodyContent{Attributes: hcl.Attributes{}}
	}
	return c
}

// single returns the one block of type typ, reporting any further ones.
func (d *decoder) single(blocks hcl.Blocks, typ, where string) *hcl.Block {
	var first *hcl.Block
	for _, b := range blocks.OfType(typ) {
		if first == nil {
			first = b
			continue
		}
		d.errorAt(b.DefRange, fmt.Sprintf("Duplicate %s block", typ),
			fmt.Sprintf("%s takes one %s block; the first is at %s.", where, typ, at(first.DefRange)))
	}
	return first
}

// decode evaluates a's value into dst (a Go value gohcl can convert to),
// and reports whether it succeeded.
func (d *decoder) decode(a *hcl.Attribute, dst any) bool {
	diags := decodeExpr(a.Expr, dst)
	d.add(diags)
	return !diags.HasErrors()
}

// decodeExpr is gohcl.DecodeExpression without gohcl, whose import of
// hclwrite drags in a module this repository does not carry: evaluate with
// no variables or functions, convert to dst's cty type, then into dst.
func decodeExpr(expr hcl.Expression, dst any) hcl.Diagnostics {
	val, diags := expr.Value(nil)
	if diags.HasErrors() {
		return diags
	}
	bad := func(err error) hcl.Diagnostics {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Incorrect value type",
			Detail: fmt.Sprintf("Unsuitable value: %s.", err), Subject: expr.Range().Ptr(),
		})
	}
	ty, err := gocty.ImpliedType(dst)
	if err != nil {
		return bad(err)
	}
	if val.IsNull() {
		return bad(fmt.Errorf("a value is required, not null"))
	}
	if val.IsWhollyKnown() && outOfRange(val) {
		// Converting it to a string would spell out every digit.
		return bad(fmt.Errorf("a number beyond what a 64-bit float can hold"))
	}
	if val, err = convert.Convert(val, ty); err != nil {
		return bad(err)
	}
	if err := gocty.FromCtyValue(val, dst); err != nil {
		return bad(err)
	}
	return diags
}

// The helpers below set *dst only when the attribute is present and valid,
// so that defaults set beforehand survive, and return the attribute for
// further checks (nil when absent or invalid).

func (d *decoder) str(attrs hcl.Attributes, name string, dst *string) *hcl.Attribute {
	a := attrs[name]
	var v string
	if a == nil || !d.decode(a, &v) {
		return nil
	}
	*dst = v
	return a
}

func (d *decoder) boolean(attrs hcl.Attributes, name string, dst *bool) *hcl.Attribute {
	a := attrs[name]
	var v bool
	if a == nil || !d.decode(a, &v) {
		return nil
	}
	*dst = v
	return a
}

func (d *decoder) strList(attrs hcl.Attributes, name string, dst *[]string) *hcl.Attribute {
	a := attrs[name]
	var v []string
	if a == nil || !d.decode(a, &v) {
		return nil
	}
	*dst = v
	return a
}

// count decodes a whole number that must not be negative.
func (d *decoder) count(attrs hcl.Attributes, name string, dst *int) *hcl.Attribute {
	a := attrs[name]
	var v int
	if a == nil || !d.decode(a, &v) {
		return nil
	}
	if v < 0 {
		d.attrError(a, "Negative number", fmt.Sprintf("%s must be 0 or more, not %d.", name, v))
		return nil
	}
	*dst = v
	return a
}

// duration decodes a wire.ParseDuration string. With emptyIsZero, "" means
// "none" (an unset timeout), otherwise it is an error.
func (d *decoder) duration(attrs hcl.Attributes, name string, dst *time.Duration, emptyIsZero bool) *hcl.Attribute {
	a := attrs[name]
	var s string
	if a == nil || !d.decode(a, &s) {
		return nil
	}
	if s == "" && emptyIsZero {
		*dst = 0
		return a
	}
	v, err := wire.ParseDuration(s)
	if err != nil {
		d.attrError(a, "Invalid duration",
			fmt.Sprintf("%s takes a duration such as \"90s\", \"1h30m\" or \"30d\": %v.", name, err))
		return nil
	}
	*dst = v
	return a
}

// positiveDuration is duration where zero makes no sense.
func (d *decoder) positiveDuration(attrs hcl.Attributes, name string, dst *time.Duration) *hcl.Attribute {
	var v time.Duration
	a := d.duration(attrs, name, &v, false)
	if a == nil {
		return nil
	}
	if v <= 0 {
		d.attrError(a, "Invalid duration", fmt.Sprintf("%s must be longer than zero.", name))
		return nil
	}
	*dst = v
	return a
}

// size decodes a byte count: a whole number with an optional unit B, KiB,
// MiB or GiB; a bare number is bytes.
func (d *decoder) size(attrs hcl.Attributes, name string, dst *int64) *hcl.Attribute {
	a := attrs[name]
	var s string
	if a == nil || !d.decode(a, &s) {
		return nil
	}
	v, err := parseSize(s)
	if err != nil {
		d.attrError(a, "Invalid size", fmt.Sprintf("%s takes a size such as \"64MiB\" (units B, KiB, MiB, GiB): %v.", name, err))
		return nil
	}
	*dst = v
	return a
}

var sizeUnits = []struct {
	suffix string
	factor int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}}

func parseSize(s string) (int64, error) {
	num, factor := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, factor = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive whole number of bytes, KiB, MiB or GiB", s)
	}
	if n > math.MaxInt64/factor {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * factor, nil
}

// oneOf decodes a string that must be one of allowed.
func (d *decoder) oneOf(attrs hcl.Attributes, name string, dst *string, allowed []string) *hcl.Attribute {
	var v string
	a := d.str(attrs, name, &v)
	if a == nil {
		return nil
	}
	for _, ok := range allowed {
		if v == ok {
			*dst = v
			return a
		}
	}
	d.attrError(a, fmt.Sprintf("Invalid %s", name), fmt.Sprintf("%s must be %s, not %q.", name, orList(allowed), v))
	return nil
}

func orList(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = strconv.Quote(w)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// jsonBody renders a body of plain attributes as a JSON object: plugin
// configuration and target arguments belong to the plugin, which decodes
// them against its own schema, so the core only passes them on.
func (d *decoder) jsonBody(body hcl.Body) json.RawMessage {
	attrs, diags := body.JustAttributes()
	d.add(diags)
	vals := make(map[string]cty.Value, len(attrs))
	for name, a := range attrs {
		v, diags := a.Expr.Value(nil)
		d.add(diags)
		if diags.HasErrors() {
			continue
		}
		if !v.IsWhollyKnown() {
			continue // unreachable without variables; kept so Marshal cannot fail on it
		}
		if outOfRange(v) {
			d.attrError(a, "Number out of range", fmt.Sprintf("%s holds a number beyond what a 64-bit float can hold; plugins read numbers as such.", name))
			continue
		}
		vals[name] = v
	}
	obj := cty.ObjectVal(vals)
	b, err := ctyjson.Marshal(obj, obj.Type())
	if err != nil {
		d.errorAt(body.MissingItemRange(), "Cannot render as JSON", err.Error())
		return json.RawMessage("{}")
	}
	return b
}

// outOfRange finds numbers beyond float64's exponents: a plugin could
// not read them, and rendering 1e9999999 in JSON's plain notation would
// take ten million digits.
func outOfRange(v cty.Value) bool {
	bad := false
	_ = cty.Walk(v, func(_ cty.Path, v cty.Value) (bool, error) {
		if v.Type() == cty.Number && !v.IsNull() {
			f := v.AsBigFloat()
			if exp := f.MantExp(nil); f.Sign() != 0 && (f.IsInf() || exp > 1024 || exp < -1074) {
				bad = true
			}
		}
		return !bad, nil
	})
	return bad
}

// at names a place for a detail message: "jobs/db.hcl:12".
func at(r hcl.Range) string {
	return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line)
}
