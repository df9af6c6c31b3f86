package loadgen

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// maxSources bounds a range; more addresses than this buy nothing (each
// gives about 28,000 ephemeral ports) and a typo could ask for millions.
const maxSources = 4096

// ParseSources reads the local addresses to dial from: a comma-separated
// list of addresses and inclusive ranges, "127.0.0.2-127.0.0.9,127.0.1.1".
// The empty string is no address: the kernel picks the source.
func ParseSources(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := netip.ParseAddr(lo)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", part, err)
		}
		if !isRange {
			out = append(out, first)
			continue
		}
		last, err := netip.ParseAddr(hi)
		if err != nil {
			return nil, fmt.Errorf("source range %q: %w", part, err)
		}
		if first.BitLen() != last.BitLen() || last.Less(first) {
			return nil, fmt.Errorf("source range %q: the end is before the start or of another family", part)
		}
		for a := first; ; a = a.Next() {
			if len(out) >= maxSources {
				return nil, fmt.Errorf("source range %q: more than %d addresses", part, maxSources)
			}
			out = append(out, a)
			if a == last {
				break
			}
		}
	}
	if len(out) > maxSources {
		return nil, errors.New("more than 4096 source addresses")
	}
	return out, nil
}
