package notifier_test

import (
	"strings"
	"testing"

	"github.com/saltpeter/saltpeter/sdk/notifier"
)

func TestDecodeConfig(t *testing.T) {
	type cfg struct {
		URL string `json:"url"`
	}
	tests := []struct {
		raw, want, err string
	}{
		{``, "", ""},
		{` {"url": "https://x"} `, "https://x", ""},
		{`{"uri": "https://x"}`, "", `unknown field "uri"`},
		{`{"url": 3}`, "", "cannot unmarshal number"},
		{`["https://x"]`, "", "not a JSON object"},
		{`{"url": "a"} {"url": "b"}`, "", "trailing data"},
	}
	for _, tc := range tests {
		var c cfg
		err := notifier.DecodeConfig([]byte(tc.raw), &c)
		switch {
		case tc.err == "" && (err != nil || c.URL != tc.want):
			t.Errorf("DecodeConfig(%q) = %+v, %v; want url %q", tc.raw, c, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("DecodeConfig(%q) error %v, want one containing %q", tc.raw, err, tc.err)
		}
	}
}
