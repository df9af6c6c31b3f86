package wire

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses a Go duration plus a leading whole-days term with
// "d" ("30d", "1d12h"). The empty string is an error; callers decide
// whether empty means "none".
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	rest := s
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		// 100 years of days keeps days + the rest far from overflowing.
		n, err := strconv.ParseUint(s[:i], 10, 32)
		if err == nil && n > 36500 {
			return 0, fmt.Errorf("invalid duration %q: more than 36500 days", s)
		}
		if err == nil {
			days = time.Duration(n) * 24 * time.Hour
			rest = s[i+1:]
			if rest == "" {
				return days, nil
			}
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use forms like 90s, 1h30m or 30d)", s)
	}
	if d < 0 || days < 0 {
		return 0, fmt.Errorf("invalid duration %q: negative", s)
	}
	return days + d, nil
}

// FormatDuration renders d the way ParseDuration reads it; whole days keep
// the "d" form so that a configured "30d" reads back as "30d".
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	day := 24 * time.Hour
	if d >= day {
		days := d / day
		rest := d % day
		if rest == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%s", days, rest)
	}
	return d.String()
}
