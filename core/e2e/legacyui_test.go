package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// legacySocket is the events socket as the old tool's UI used it: JSON
// commands such as {"killCron": "job"}, one reply each.
type legacySocket struct {
	t  *testing.T
	ws *websocket.Conn
}

type legacyReply struct {
	Kind    string   `json:"kind"`
	Command string   `json:"command"`
	OK      bool     `json:"ok"`
	RunID   string   `json:"run_id"`
	Runs    []string `json:"runs"`
	Code    string   `json:"code"`
	Error   string   `json:"error"`
}

func dialLegacy(t *testing.T, c *core, token string) *legacySocket {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+c.addr+"/api/v1/events", h)
	if err != nil {
		t.Fatalf("dial the events socket: %v (%v)", err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return &legacySocket{t: t, ws: ws}
}

// send sends one command and returns its reply, skipping the hello and
// the events that stream meanwhile.
func (s *legacySocket) send(cmd string) legacyReply {
	s.t.Helper()
	if err := s.ws.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
		s.t.Fatalf("send %s: %v", cmd, err)
	}
	_ = s.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, b, err := s.ws.ReadMessage()
		if err != nil {
			s.t.Fatalf("reply to %s: %v", cmd, err)
		}
		var r legacyReply
		if json.Unmarshal(b, &r) == nil && r.Kind == "reply" {
			return r
		}
	}
}

// TestLegacyUIKillCron: the old tool's UI killed a job with
// ws.send(JSON.stringify({killCron: 'job_name'})); that still works, and
// ends the job with 143 through the real wrapper; the same from a read
// token is refused and kills nothing.
func TestLegacyUIKillCron(t *testing.T) {
	t.Parallel()
	digest := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	c := startCore(t, coreBlock(fmt.Sprintf(`  api_tokens = [
    { name = "viewer", role = "read", sha256 = %q },
    { name = "ops", role = "operate", sha256 = %q },
  ]`, digest("read-secret"), digest("operate-secret")))+job("sleeper", "echo started; sleep 300", ""))
	ops, viewer := dialLegacy(t, c, "operate-secret"), dialLegacy(t, c, "read-secret")

	started := ops.send(`{"run": "sleeper"}`)
	if !started.OK || started.RunID == "" {
		t.Fatalf("run over the socket: %+v", started)
	}
	get := func(id string) run {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, c.url("/api/v1/runs/"+id), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer read-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r run
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	await := func(what string, cond func(run) bool) run {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := get(started.RunID)
			if cond(r) {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: run is %+v", what, r)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	await("running", func(r run) bool { return len(r.Machines) == 1 && r.Machines[0].Status == "running" })

	if r := viewer.send(`{"killCron": "sleeper"}`); r.OK || r.Code != "FORBIDDEN" {
		t.Fatalf("killCron from a read token: %+v, want FORBIDDEN", r)
	}
	if r := get(started.RunID); r.Status != "running" || len(r.Actions) != 0 {
		t.Fatalf("after a refused killCron the run is %s with actions %+v", r.Status, r.Actions)
	}

	if r := ops.send(`{"killCron": "sleeper"}`); !r.OK || len(r.Runs) != 1 || r.Runs[0] != started.RunID {
		t.Fatalf("killCron: %+v, want the run %s", r, started.RunID)
	}
	r := await("killed", func(r run) bool { return r.Status != "running" })
	if r.Status != "killed" || deref(r.Machines[0].ExitCode) != 143 || r.KilledBy != "ops" {
		t.Fatalf("run after killCron: %s, exit %v, killed by %q; want killed, 143, ops", r.Status, deref(r.Machines[0].ExitCode), r.KilledBy)
	}
}
