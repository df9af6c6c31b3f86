package config

import "fmt"

// BuiltinNotifiers are the notifier plugins built into the core, which a
// notifier block's plugin may name without a plugin "notifier" block.
// config does not import the plugins: core/pluginhost's tests check this
// list against plugins/builtin.
var BuiltinNotifiers = []string{"email", "exec", "slack", "webhook"}

// checkNotifierPlugins refuses a notifier block whose plugin is neither
// built in nor declared by a plugin "notifier" block. After a syntax
// error it is skipped: the plugin block may be in the part that failed.
func (l *loader) checkNotifierPlugins() {
	if l.syntaxErrors {
		return
	}
	known := map[string]bool{}
	for _, n := range BuiltinNotifiers {
		known[n] = true
	}
	for _, p := range l.cfg.Plugins {
		if p.Kind == KindNotifier {
			known[p.Name] = true
		}
	}
	for _, a := range l.notifierPlugins {
		var name string
		if diags := decodeExpr(a.Expr, &name); diags.HasErrors() || known[name] {
			continue
		}
		l.attrError(a, "Unknown notifier plugin",
			fmt.Sprintf("plugin %q is neither a built-in notifier (%s) nor configured with a plugin \"notifier\" %q block.", name, orList(BuiltinNotifiers), name))
	}
}
