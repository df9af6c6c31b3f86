package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// The dispatch protocol between the sim target plugin and the load
// generator: newline-delimited JSON over one stream connection (unix or
// TCP), kept open and reused for every dispatch.
const (
	OpDispatch = "dispatch" // start a fake wrapper; answered by one Reply
	OpCancel   = "cancel"   // the core gave up waiting for dispatch ID; no answer
)

// MaxLine bounds one line of the protocol. A dispatch carries the
// dispatch environment, a few hundred bytes; the bound only stops a peer
// that is not speaking the protocol from filling memory.
const MaxLine = 1 << 20

// Request is one line from the plugin. ID is the plugin's, unique on its
// connection; replies come back in any order and name it.
type Request struct {
	ID       uint64            `json:"id"`
	Op       string            `json:"op"`
	Job      string            `json:"job,omitempty"`
	RunID    string            `json:"run_id,omitempty"`
	Machine  string            `json:"machine,omitempty"`
	Protocol int               `json:"protocol,omitempty"`
	Wrapper  string            `json:"wrapper,omitempty"`
	Args     json.RawMessage   `json:"args,omitempty"`
	Env      map[string]string `json:"env,omitempty"`
}

// Reply answers one dispatch: accepted (OK, with the detail a wrapper's
// detach line would give) or refused (Error says why; it never holds the
// token). A line that cannot be read at all is answered with ID 0.
type Reply struct {
	ID     uint64 `json:"id"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Listen opens the dispatch listener at addr: "unix:/path" (the socket
// file is replaced and made private to the user: dispatches carry
// tokens), "tcp:host:port", or "host:port".
func Listen(addr string) (net.Listener, error) {
	network, a := splitAddr(addr)
	if network == "unix" {
		if err := os.Remove(a); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("listen %s: remove the old socket: %w", addr, err)
		}
	}
	l, err := net.Listen(network, a)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if network == "unix" {
		if err := os.Chmod(a, 0o600); err != nil {
			l.Close()
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
	}
	return l, nil
}

func splitAddr(addr string) (network, a string) {
	switch {
	case strings.HasPrefix(addr, "unix:"):
		return "unix", strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "tcp:"):
		return "tcp", strings.TrimPrefix(addr, "tcp:")
	}
	return "tcp", addr
}

// serveDispatcher reads one plugin connection's requests until it closes
// or ctx ends. One goroutine reads and dispatches (a dispatch only starts
// a fake wrapper, so it never blocks); one writes the replies, flushing
// whenever none is waiting, so a burst of dispatches costs a few writes.
func (s *Server) serveDispatcher(ctx context.Context, nc net.Conn) {
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	defer nc.Close()
	replies := make(chan Reply, 1024)
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		s.writeReplies(nc, replies)
	}()
	defer func() {
		close(replies)
		<-wdone
	}()

	sc := bufio.NewScanner(nc)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	for sc.Scan() {
		var req Request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			// Not the protocol; the error names no field value, so no
			// token can leak through it.
			s.stats.refused()
			replies <- Reply{Error: fmt.Sprintf("bad request line: %v", err)}
			continue
		}
		switch req.Op {
		case OpCancel:
			// Every dispatch is answered at once, so there is nothing
			// left to cancel.
		case OpDispatch:
			replies <- s.dispatch(ctx, req)
		default:
			s.stats.refused()
			replies <- Reply{ID: req.ID, Error: fmt.Sprintf("unknown op %q", req.Op)}
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		s.log.Warn("dispatch connection ended", "remote_addr", nc.RemoteAddr().String(), "error", err)
	}
}

func (s *Server) writeReplies(nc net.Conn, replies <-chan Reply) {
	w := bufio.NewWriterSize(nc, 32<<10)
	enc := json.NewEncoder(w)
	failed := false
	for r := range replies {
		if failed {
			continue // drain, so the reader never blocks on a dead peer
		}
		if err := enc.Encode(r); err != nil {
			failed = true
			nc.Close()
			continue
		}
		if len(replies) == 0 {
			if err := w.Flush(); err != nil {
				failed = true
				nc.Close()
			}
		}
	}
}
