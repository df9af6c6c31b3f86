package builtin_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/saltpeter/saltpeter/plugins/builtin"
)

func TestNames(t *testing.T) {
	if got := builtin.Names("target"); !slices.Contains(got, "local") {
		t.Errorf(`Names("target") = %q, want local among them`, got)
	}
	if got := builtin.Names("notifier"); !slices.Equal(got, []string{"email", "exec", "slack", "webhook"}) {
		t.Errorf(`Names("notifier") = %q, want email, exec, slack, webhook`, got)
	}
	if got := builtin.Names("nonsense"); len(got) != 0 {
		t.Errorf(`Names("nonsense") = %q, want none`, got)
	}
}

func TestServeUnknown(t *testing.T) {
	tests := []struct{ kind, name, want string }{
		{"target", "nope", `no built-in target plugin "nope" (built-in: local, salt, ssh)`},
		{"notifier", "pager", `no built-in notifier plugin "pager" (built-in: email, exec, slack, webhook)`},
		{"nonsense", "local", `no built-in plugins of kind "nonsense"`},
	}
	for _, tt := range tests {
		err := builtin.Serve(tt.kind, tt.name)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Serve(%q, %q) = %v, want %q", tt.kind, tt.name, err, tt.want)
		}
	}
}
