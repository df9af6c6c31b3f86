package salt_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/saltpeter/saltpeter/plugins/salt/salttest"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// TestResolveGlob: a glob resolves to the minions it matches, through
// test.ping published with local_async, tgt_type glob by default; and
// again to the same.
func TestResolveGlob(t *testing.T) {
	s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web2"}, {ID: "db1"}, {ID: "web1"}}})
	tgt, _ := configured(t, s, nil)
	for i := range 2 {
		got, err := tgt.Resolve(ctx(t), resolveReq("j", args("web*", "")))
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		if want := []string{"web1", "web2"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("Resolve #%d = %q, want %q", i+1, got, want)
		}
	}
	low := s.Calls()[0].Lowstate
	for k, want := range map[string]any{"client": "local_async", "fun": "test.ping", "tgt": "web*", "tgt_type": "glob"} {
		if low[k] != want {
			t.Errorf("lowstate %s = %v, want %v (whole: %v)", k, low[k], want, low)
		}
	}
}

// TestResolvePassesTargetTypesVerbatim: tgt and tgt_type reach Salt as
// the job wrote them, whatever the type; Salt decides what matches.
func TestResolvePassesTargetTypesVerbatim(t *testing.T) {
	tests := []struct{ tgt, tgtType string }{
		{"web1", "glob"},
		{"web[0-9]+", "pcre"},
		{"web1,db9", "list"},
		{"os:Debian", "grain"},
		{"os:Deb.*", "grain_pcre"},
		{"role:web", "pillar"},
		{"role:w.*", "pillar_pcre"},
		{"webservers", "nodegroup"},
		{"G@os:Debian and web* or E@db[0-9]", "compound"},
		{"10.0.0.0/24", "ipcidr"},
		{"some future type's target", "a_type_salt_adds_later"},
	}
	var mu sync.Mutex
	var seen [][2]string
	s := salttest.Start(t, salttest.Config{
		Minions: []salttest.Minion{{ID: "web1"}},
		Match: func(tgt any, tgtType string) []string {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, [2]string{tgt.(string), tgtType})
			return []string{"web1"}
		},
	})
	tgt, _ := configured(t, s, nil)
	for i, tt := range tests {
		got, err := tgt.Resolve(ctx(t), resolveReq("j", args(tt.tgt, tt.tgtType)))
		if err != nil {
			t.Errorf("Resolve(%q, %s): %v", tt.tgt, tt.tgtType, err)
			continue
		}
		if !reflect.DeepEqual(got, []string{"web1"}) {
			t.Errorf("Resolve(%q, %s) = %q, want [web1]", tt.tgt, tt.tgtType, got)
		}
		low := s.Calls()[i].Lowstate
		if low["tgt"] != tt.tgt || low["tgt_type"] != tt.tgtType {
			t.Errorf("Salt got tgt %v, tgt_type %v; want %q, %q", low["tgt"], low["tgt_type"], tt.tgt, tt.tgtType)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(tests)-3 { // glob, pcre and list are the stand-in's own
		t.Errorf("the other target types reached the master's matcher %d times, want %d: %v", len(seen), len(tests)-3, seen)
	}
}

// TestResolveArgErrors: a target block that is not a Salt target is
// refused with what is wrong, before salt-api is asked anything.
func TestResolveArgErrors(t *testing.T) {
	s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web1"}}})
	tgt, _ := configured(t, s, nil)
	tests := []struct {
		args string
		want string
	}{
		{`{}`, "tgt is required"},
		{``, "tgt is required"},
		{`{"tgt":""}`, "tgt is required"},
		{`{"tgt":5}`, "tgt must be a string, not 5"},
		{`{"tgt":["web1"]}`, "tgt must be a string"},
		{`{"tgt":"web1","tgt_type":["glob"]}`, "tgt_type must be a string"},
		{`{"tgt":"web1","tgt_type":""}`, "tgt_type is empty"},
		{`{"tgt":"web1","hosts":["web1"]}`, `unknown argument "hosts"`},
		{`["web1"]`, "not a JSON object"},
	}
	for _, tt := range tests {
		_, err := tgt.Resolve(ctx(t), resolveReq("job-x", []byte(tt.args)))
		mustContain(t, "Resolve("+tt.args+")", err, tt.want, "job-x")
	}
	if n := len(s.Calls()); n != 0 || s.Logins() != 0 {
		t.Errorf("salt-api saw %d calls and %d logins for bad target blocks, want none", n, s.Logins())
	}
}

// TestResolveNoMatch: a target that matches no minion is an error that
// names it, whether salt-api answers {} (nothing sent) or, as a master of
// syndics does, publishes anyway and no minion answers.
func TestResolveNoMatch(t *testing.T) {
	for _, syndic := range []bool{false, true} {
		t.Run(fmt.Sprintf("syndic %v", syndic), func(t *testing.T) {
			s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web1"}}})
			tgt, _ := configured(t, s, map[string]any{"ping_timeout": "200ms"})
			if syndic {
				s.FailNext("/", 200, "application/json", `{"return": [{"jid": "20260101000000000001", "minions": []}]}`)
			}
			got, err := tgt.Resolve(ctx(t), resolveReq("j", args("db*", "")))
			mustContain(t, "Resolve", err, "db*", "glob", "no minion matched")
			if got != nil {
				t.Errorf("Resolve returned %q with its error", got)
			}
		})
	}
}

// TestResolveUnionSorted: the machines are the minions the master
// expected and those that answered, sorted; a silent one is among them.
func TestResolveUnionSorted(t *testing.T) {
	s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{
		{ID: "m-b"}, {ID: "m-a", Silent: true}, {ID: "m-c", Unexpected: true}, {ID: "other"},
	}})
	tgt, _ := configured(t, s, map[string]any{"ping_timeout": "200ms"})
	got, err := tgt.Resolve(ctx(t), resolveReq("j", args("m-*", "")))
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if want := []string{"m-a", "m-b", "m-c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Resolve = %q, want %q", got, want)
	}
}

// TestSilentMinionIsUnreachable: a minion that matched but did not answer
// test.ping is in Resolve's machines, and its Dispatch fails at once with
// ErrUnreachable and the reason, with nothing sent to it; the others are
// dispatched to. Directly and across the gRPC adapter.
func TestSilentMinionIsUnreachable(t *testing.T) {
	for _, via := range []struct {
		name string
		wrap func(*testing.T, target.Target) target.Target
	}{
		{"direct", func(_ *testing.T, tg target.Target) target.Target { return tg }},
		{"over gRPC", func(t *testing.T, tg target.Target) target.Target { return target.TestGRPCConn(t, tg) }},
	} {
		t.Run(via.name, func(t *testing.T) {
			s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web1"}, {ID: "web3", Silent: true}}})
			raw, _ := newTarget(t)
			tgt := via.wrap(t, raw)
			if err := tgt.Configure(ctx(t), config(t, s, map[string]any{"ping_timeout": "300ms"})); err != nil {
				t.Fatal(err)
			}
			a := args("web*", "glob")
			got, err := tgt.Resolve(ctx(t), resolveReq("nightly", a))
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if want := []string{"web1", "web3"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("Resolve = %q, want %q", got, want)
			}
			before := len(s.Calls())
			_, err = tgt.Dispatch(ctx(t), request("nightly", "run-1", "web3", a))
			if !errors.Is(err, target.ErrUnreachable) {
				t.Fatalf("Dispatch to the silent minion: %v, want ErrUnreachable", err)
			}
			mustContain(t, "Dispatch to the silent minion", err, "web3", "web*", "did not answer test.ping", "300ms")
			if n := len(s.Calls()); n != before {
				t.Errorf("Dispatch to the silent minion sent %d commands to Salt, want none", n-before)
			}
			res, err := tgt.Dispatch(ctx(t), request("nightly", "run-1", "web1", a))
			if err != nil {
				t.Fatalf("Dispatch to web1: %v", err)
			}
			if !strings.Contains(res.Detail, "pid=") {
				t.Errorf("Detail = %q, want the pid", res.Detail)
			}
		})
	}
}

// TestLatestResolveWins: what is known of silent minions is per job and
// target, and the latest Resolve's: a minion that answers again is
// dispatched to, and another job's Resolve does not refuse it.
func TestLatestResolveWins(t *testing.T) {
	s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web1"}, {ID: "web2", Silent: true}}})
	tgt, _ := configured(t, s, map[string]any{"ping_timeout": "200ms", "return_timeout": "200ms"})
	a := args("web*", "")
	if _, err := tgt.Resolve(ctx(t), resolveReq("a", a)); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.Dispatch(ctx(t), request("a", "run-1", "web2", a)); !errors.Is(err, target.ErrUnreachable) {
		t.Fatalf("Dispatch to web2 while silent: %v, want ErrUnreachable", err)
	}
	// Job b never resolved web2 as silent: its Dispatch goes to Salt,
	// and without a return within return_timeout it is accepted.
	res, err := tgt.Dispatch(ctx(t), request("b", "run-2", "web2", a))
	if err != nil {
		t.Fatalf("Dispatch of another job to web2: %v", err)
	}
	if !strings.Contains(res.Detail, "no return within 200ms") {
		t.Errorf("Detail = %q, want it to say no return came", res.Detail)
	}

	s.SetSilent("web2", false)
	if _, err := tgt.Resolve(ctx(t), resolveReq("a", a)); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.Dispatch(ctx(t), request("a", "run-3", "web2", a)); err != nil {
		t.Fatalf("Dispatch to web2 once it answered: %v", err)
	}
}

// TestResolveWaitsForSlowMinions: returns that come in over several reads
// of the job, within ping_timeout, count.
func TestResolveWaitsForSlowMinions(t *testing.T) {
	s := salttest.Start(t, salttest.Config{Minions: []salttest.Minion{{ID: "web1"}, {ID: "web2", ReturnAfterPolls: 3}}})
	tgt, _ := configured(t, s, nil)
	a := args("web*", "")
	if _, err := tgt.Resolve(ctx(t), resolveReq("j", a)); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.Dispatch(ctx(t), request("j", "run-1", "web2", a)); err != nil {
		t.Fatalf("Dispatch to the slow minion: %v (taken as silent?)", err)
	}
	if run := lastRunBg(t, s).Runs["web2"]; run.PID == 0 {
		t.Errorf("the slow minion ran nothing: %+v", run)
	}
}
