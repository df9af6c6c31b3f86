package api

import (
	"fmt"
	"net"
	"strings"

	"github.com/saltpeter/saltpeter/core/config"
)

// CheckListen refuses to serve the API without tokens anywhere but on a
// loopback address: an operate-everything API on a reachable port would
// let anyone who can reach it run and kill jobs. An empty host (":8080")
// listens on every interface and is refused too.
func CheckListen(listen string, tokens []config.APIToken) error {
	if len(tokens) > 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("core listen %q: %v (want host:port, e.g. 127.0.0.1:8080)", listen, err)
	}
	if host == "" {
		return fmt.Errorf("core listen %q listens on every interface, and no api_tokens are configured: "+
			"listen on a loopback address (127.0.0.1:PORT) or configure api_tokens", listen)
	}
	if !strings.EqualFold(host, "localhost") {
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("core listen %q is not a loopback address, and no api_tokens are configured: "+
				"anyone who can reach it could run and kill jobs; listen on 127.0.0.1 or ::1, or configure api_tokens", listen)
		}
	}
	return nil
}
