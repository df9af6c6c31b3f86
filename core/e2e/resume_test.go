package e2e

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// cutProxy forwards TCP connections to a backend and can cut every open
// one at once, as a flaky network between wrapper and core would.
type cutProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	backend string
	held    bool
	open    []net.Conn
	accepts chan struct{}
}

func newCutProxy(t *testing.T) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &cutProxy{ln: ln, accepts: make(chan struct{}, 100)}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go p.serve()
	return p
}

func (p *cutProxy) setBackend(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backend = addr
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.held {
			p.mu.Unlock()
			c.Close()
			continue
		}
		b, err := net.Dial("tcp", p.backend)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.open = append(p.open, c, b)
		p.mu.Unlock()
		p.accepts <- struct{}{}
		go func() { _, _ = io.Copy(b, c); b.Close() }()
		go func() { _, _ = io.Copy(c, b); c.Close() }()
	}
}

// hold cuts every connection and refuses new ones until release.
func (p *cutProxy) hold() {
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
	p.cut()
}

func (p *cutProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = false
}

// cut closes every open connection.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.open {
		c.Close()
	}
	p.open = nil
}

// TestOutputSurvivesDroppedConnections runs the real wrapper against the
// real core through a proxy that cuts the connection several times while
// the job writes: the wrapper resumes, and the stored output is exactly
// what the job wrote, no byte lost or stored twice.
func TestOutputSurvivesDroppedConnections(t *testing.T) {
	t.Parallel()
	p := newCutProxy(t)
	const lines = 300
	cmd := fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo "line $i of the job's output, padded to be a little longer"; i=$((i+1)); sleep 0.01; done; echo done`, lines)
	c := startCore(t, coreBlock(fmt.Sprintf("  advertise = [%q]", "ws://"+p.ln.Addr().String()))+job("chatty", cmd, ""))
	p.setBackend(c.addr)
	id := c.runNow("chatty")
	host := hostname(t)

	cuts, stored := 0, int64(0)
	for cuts < 4 {
		select {
		case <-p.accepts:
		case <-time.After(30 * time.Second):
			t.Fatalf("the wrapper did not (re)connect after %d cuts", cuts)
		}
		// Cut once more output was stored over this connection.
		r := c.waitRun(id, 30*time.Second, "more output stored", func(r run) bool {
			return len(r.Machines) == 1 && (r.Machines[0].OutputBytes > stored || finalMachine(r.Machines[0]))
		})
		if finalMachine(r.Machines[0]) {
			break
		}
		stored = r.Machines[0].OutputBytes
		p.cut()
		cuts++
	}
	r := c.waitFinal(id, 60*time.Second)
	if r.Status != "succeeded" {
		t.Fatalf("run after %d cuts: %+v", cuts, r)
	}
	var want strings.Builder
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&want, "line %d of the job's output, padded to be a little longer\n", i)
	}
	want.WriteString("done\n")
	got := c.output(id, host, "stdout")
	if got != want.String() {
		t.Fatalf("after %d cuts the stored output differs: %d bytes, want %d; first difference at byte %d",
			cuts, len(got), want.Len(), firstDiff(got, want.String()))
	}
	if cuts < 2 {
		t.Fatalf("only %d cuts happened while the job ran; the test proved little", cuts)
	}
}

func finalMachine(m machine) bool { return m.Status != "running" && m.Status != "pending" }

func firstDiff(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
