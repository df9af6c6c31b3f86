package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// fakeStore is a Store for the adapter tests: it records what reached it
// and answers what the test set. The memory store runs the whole contract
// over the adapter in core/store/memory; the sdk must not import it.
type fakeStore struct {
	mu         sync.Mutex
	err        error // returned by every method when set
	run        Run   // stored by CreateRun, returned by GetRun
	runUpdate  *RunUpdate
	machUpdate *MachineUpdate
	chunks     []Chunk
	overrides  []JobOverride
	config     []byte
	closed     bool
	// fire is the last RecordFire that reached the store; fireOK its
	// answer; lastFire LastFire's answer.
	fire     fireCall
	fireOK   bool
	lastFire time.Time
	// pruneBefore is the time the last PruneRuns got; pruned its answer.
	pruneBefore time.Time
	pruned      int

	// enqueued are the notifications EnqueueNotifications got; claim the
	// last ClaimRequest, answered with notes; finish the last
	// FinishNotification; noteFilter the last ListNotifications filter,
	// also answered with notes.
	enqueued   []Notification
	claim      ClaimRequest
	notes      []Notification
	finish     finishCall
	noteFilter NotificationFilter

	// audit is the entry the last AppendAudit got, answered with auditID;
	// auditFilter the last ListAudit filter, answered with audits.
	audit       AuditEntry
	auditID     int64
	auditFilter AuditFilter
	audits      []AuditEntry

	// lastRunsQuery is the last LastRuns query, answered with summaries;
	// firesJobs the last LastFires jobs, answered with slots.
	lastRunsQuery LastRunsQuery
	summaries     []RunSummary
	firesJobs     []string
	slots         map[string]time.Time

	// appendGate, when set, holds the AppendOutput of seq 0 until closed,
	// after sending on appendEntered.
	appendGate    chan struct{}
	appendEntered chan struct{}
	// appendFn answers AppendOutput when set.
	appendFn func(runID, machine string, c Chunk) (int64, error)
}

func (f *fakeStore) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *fakeStore) CreateRun(_ context.Context, run Run) error {
	if err := f.fail(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.run = run
	return nil
}

func (f *fakeStore) AddMachines(context.Context, string, []Machine) error { return f.fail() }

func (f *fakeStore) UpdateRun(_ context.Context, _ string, u RunUpdate) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runUpdate = &u
	return f.err
}

func (f *fakeStore) UpdateMachine(_ context.Context, _, _ string, u MachineUpdate) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.machUpdate = &u
	return f.err
}

func (f *fakeStore) GetRun(context.Context, string) (Run, error) {
	if err := f.fail(); err != nil {
		return Run{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.run, nil
}

func (f *fakeStore) ListRuns(context.Context, RunFilter) ([]Run, error) {
	return []Run{f.run}, f.fail()
}

func (f *fakeStore) LastRuns(_ context.Context, q LastRunsQuery) ([]RunSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastRunsQuery = q
	if f.err != nil {
		return nil, f.err
	}
	return f.summaries, nil
}

func (f *fakeStore) LastFires(_ context.Context, jobs []string) (map[string]time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.firesJobs = jobs
	if f.err != nil {
		return nil, f.err
	}
	return f.slots, nil
}

func (f *fakeStore) AppendOutput(_ context.Context, runID, machine string, c Chunk) (int64, error) {
	if c.Seq == 0 && f.appendGate != nil {
		f.appendEntered <- struct{}{}
		<-f.appendGate
	}
	f.mu.Lock()
	f.chunks = append(f.chunks, c)
	fn, err := f.appendFn, f.err
	f.mu.Unlock()
	if fn != nil {
		return fn(runID, machine, c)
	}
	return c.Seq + 1, err
}

func (f *fakeStore) ReadOutput(context.Context, OutputQuery) (Output, error) {
	return Output{}, f.fail()
}

func (f *fakeStore) FireRun(context.Context, Run) (bool, error) { return false, f.fail() }

func (f *fakeStore) SetMaintenance(context.Context, Maintenance) error { return f.fail() }

func (f *fakeStore) GetMaintenance(context.Context) (Maintenance, error) {
	return Maintenance{}, f.fail()
}

func (f *fakeStore) DeleteMaintenance(context.Context) error { return f.fail() }

func (f *fakeStore) SetOverride(_ context.Context, o JobOverride) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.overrides = append(f.overrides, o)
	return f.err
}

func (f *fakeStore) DeleteOverride(context.Context, string) error { return f.fail() }

func (f *fakeStore) Overrides(context.Context) ([]JobOverride, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.overrides, f.err
}

type fireCall struct {
	job   string
	slot  time.Time
	runID string
}

func (f *fakeStore) RecordFire(_ context.Context, job string, slot time.Time, runID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fire = fireCall{job, slot, runID}
	if f.err != nil {
		return false, f.err
	}
	return f.fireOK, nil
}

func (f *fakeStore) LastFire(context.Context, string) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return time.Time{}, f.err
	}
	return f.lastFire, nil
}

func (f *fakeStore) PruneRuns(_ context.Context, finishedBefore time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruneBefore = finishedBefore
	if f.err != nil {
		return 0, f.err
	}
	return f.pruned, nil
}

type finishCall struct {
	id, owner string
	r         NotificationResult
}

func (f *fakeStore) EnqueueNotifications(_ context.Context, ns []Notification) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enqueued = ns
	return f.err
}

func (f *fakeStore) ClaimNotifications(_ context.Context, r ClaimRequest) ([]Notification, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claim = r
	if f.err != nil {
		return nil, f.err
	}
	return f.notes, nil
}

func (f *fakeStore) FinishNotification(_ context.Context, id, owner string, r NotificationResult) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finish = finishCall{id, owner, r}
	return f.err
}

func (f *fakeStore) ListNotifications(_ context.Context, nf NotificationFilter) ([]Notification, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noteFilter = nf
	if f.err != nil {
		return nil, f.err
	}
	return f.notes, nil
}

func (f *fakeStore) AppendAudit(_ context.Context, e AuditEntry) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audit = e
	if f.err != nil {
		return 0, f.err
	}
	return f.auditID, nil
}

func (f *fakeStore) ListAudit(_ context.Context, af AuditFilter) ([]AuditEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auditFilter = af
	if f.err != nil {
		return nil, f.err
	}
	return f.audits, nil
}

func (f *fakeStore) Ping(context.Context) error { return f.fail() }

func (f *fakeStore) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return f.err
}

// configurableStore is a fakeStore that takes a config.
type configurableStore struct{ fakeStore }

func (c *configurableStore) Configure(_ context.Context, config []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.config = config
	if string(config) == `{"bad":true}` {
		return errors.New("bad config")
	}
	return nil
}

// conn is a client and server over an in-memory connection, with the
// number of batch messages the server received on the output stream and
// of the unary calls it got.
type conn struct {
	client  *GRPCClient
	server  *grpc.Server
	batches atomic.Int64

	mu    sync.Mutex
	unary map[string]int // by method name, as "UpdateMachines"
}

// calls is how many unary calls of method the server got.
func (c *conn) calls(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unary[method]
}

// dial serves impl over bufconn: unlike TestGRPCConn it lets the test
// count the messages on the output stream and the unary calls, and stop
// the server.
func dial(t *testing.T, impl Store) *conn {
	t.Helper()
	c := &conn{unary: map[string]int{}}
	lis := bufconn.Listen(1 << 20)
	c.server = grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &countingStream{ServerStream: ss, n: &c.batches})
	}), grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		c.mu.Lock()
		c.unary[path.Base(info.FullMethod)]++
		c.mu.Unlock()
		return handler(ctx, req)
	}))
	if err := (&Plugin{Impl: impl}).GRPCServer(nil, c.server); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.server.Serve(lis) }()
	cc, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		c.server.Stop()
	})
	raw, err := (&Plugin{}).GRPCClient(context.Background(), nil, cc)
	if err != nil {
		t.Fatal(err)
	}
	c.client = raw.(*GRPCClient)
	return c
}

// countingStream counts the messages a server stream receives.
type countingStream struct {
	grpc.ServerStream
	n *atomic.Int64
}

func (s *countingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.n.Add(1)
	}
	return err
}

func ptr[T any](v T) *T { return &v }

var sentinels = []error{ErrNotFound, ErrExists, ErrFinal, ErrOutOfOrder, ErrUnavailable, ErrLeaseLost,
	context.Canceled, context.DeadlineExceeded, errors.ErrUnsupported}

func TestErrorsCrossTheWire(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want error // nil: none of the sentinels
		also error // a sentinel want wraps
	}{
		{"not found", fmt.Errorf("run r1: %w", ErrNotFound), ErrNotFound, nil},
		{"lease lost", fmt.Errorf("notification n1: %w", ErrLeaseLost), ErrLeaseLost, ErrNotFound},
		{"exists", fmt.Errorf("run r1: %w", ErrExists), ErrExists, nil},
		{"final", fmt.Errorf("machine a: %w", ErrFinal), ErrFinal, nil},
		{"out of order", fmt.Errorf("seq 5: %w", ErrOutOfOrder), ErrOutOfOrder, nil},
		{"unavailable", fmt.Errorf("database down: %w", ErrUnavailable), ErrUnavailable, nil},
		{"canceled", fmt.Errorf("query: %w", context.Canceled), context.Canceled, nil},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), context.DeadlineExceeded, nil},
		{"other", errors.New("disk on fire"), nil, nil},
	}
	f := &fakeStore{}
	c := dial(t, f)
	ctx := context.Background()
	calls := []struct {
		name string
		call func() error
	}{
		{"GetRun", func() error { _, err := c.client.GetRun(ctx, "r1"); return err }},
		{"UpdateMachine", func() error { return c.client.UpdateMachine(ctx, "r1", "a", MachineUpdate{}) }},
		{"Ping", func() error { return c.client.Ping(ctx) }},
		{"RecordFire", func() error { _, err := c.client.RecordFire(ctx, "j", time.Unix(60, 0), "r1"); return err }},
		{"LastFire", func() error { _, err := c.client.LastFire(ctx, "j"); return err }},
		{"LastFires", func() error { _, err := c.client.LastFires(ctx, []string{"j"}); return err }},
		{"LastRuns", func() error {
			_, err := c.client.LastRuns(ctx, LastRunsQuery{Jobs: []string{"j"}, Machines: 1})
			return err
		}},
		{"PruneRuns", func() error { _, err := c.client.PruneRuns(ctx, time.Unix(60, 0)); return err }},
		{"AppendOutput", func() error { _, err := c.client.AppendOutput(ctx, "r1", "a", Chunk{Seq: 1}); return err }},
		{"UpdateRunNotify", func() error {
			return c.client.UpdateRun(ctx, "r1", RunUpdate{Notifications: []Notification{{ID: "n1"}}})
		}},
		{"ClaimNotifications", func() error { _, err := c.client.ClaimNotifications(ctx, ClaimRequest{Owner: "o"}); return err }},
		{"FinishNotification", func() error { return c.client.FinishNotification(ctx, "n1", "o", NotificationResult{}) }},
		{"AppendAudit", func() error {
			_, err := c.client.AppendAudit(ctx, AuditEntry{At: time.Unix(60, 0), By: "ops", Action: AuditRun})
			return err
		}},
		{"ListAudit", func() error { _, err := c.client.ListAudit(ctx, AuditFilter{Job: "j"}); return err }},
	}
	for _, tc := range cases {
		for _, call := range calls {
			t.Run(tc.name+"/"+call.name, func(t *testing.T) {
				f.mu.Lock()
				f.err = tc.err
				f.mu.Unlock()
				err := call.call()
				if err == nil {
					t.Fatal("no error")
				}
				if err.Error() != tc.err.Error() {
					t.Errorf("text %q, want the store's %q", err, tc.err)
				}
				for _, s := range sentinels {
					if got, want := errors.Is(err, s), s == tc.want || s == tc.also; got != want {
						t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, want)
					}
				}
				var a interface{ PluginAnswered() bool }
				if !errors.As(err, &a) || !a.PluginAnswered() {
					t.Errorf("error %v does not say the plugin answered", err)
				}
			})
		}
	}
}

func TestOutOfOrderKeepsExpectedSeq(t *testing.T) {
	f := &fakeStore{appendFn: func(_, _ string, c Chunk) (int64, error) {
		if c.Seq > 2 {
			return 2, fmt.Errorf("seq %d, expected 2: %w", c.Seq, ErrOutOfOrder)
		}
		return 2, nil
	}}
	c := dial(t, f)
	cases := []struct {
		seq     int64
		wantErr error
	}{{0, nil}, {1, nil}, {7, ErrOutOfOrder}}
	for _, tc := range cases {
		next, err := c.client.AppendOutput(context.Background(), "r", "m", Chunk{Seq: tc.seq})
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) || next != 2 {
			t.Errorf("seq %d: next %d, err %v; want 2, %v", tc.seq, next, err, tc.wantErr)
		}
	}
}

func TestTransportFailureIsUnavailable(t *testing.T) {
	c := dial(t, &fakeStore{})
	ctx := context.Background()
	if _, err := c.client.AppendOutput(ctx, "r", "m", Chunk{}); err != nil {
		t.Fatalf("append before the stop: %v", err)
	}
	c.server.Stop()
	calls := map[string]func() error{
		"GetRun":       func() error { _, err := c.client.GetRun(ctx, "r1"); return err },
		"RecordFire":   func() error { _, err := c.client.RecordFire(ctx, "j", time.Unix(60, 0), "r1"); return err },
		"LastFire":     func() error { _, err := c.client.LastFire(ctx, "j"); return err },
		"PruneRuns":    func() error { _, err := c.client.PruneRuns(ctx, time.Unix(60, 0)); return err },
		"AppendOutput": func() error { _, err := c.client.AppendOutput(ctx, "r", "m", Chunk{Seq: 1}); return err },
		"AppendAudit": func() error {
			_, err := c.client.AppendAudit(ctx, AuditEntry{At: time.Unix(60, 0), Action: AuditKill})
			return err
		},
		"ListAudit": func() error { _, err := c.client.ListAudit(ctx, AuditFilter{}); return err },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with the plugin gone: %v, want ErrUnavailable", name, err)
		}
		var a interface{ PluginAnswered() bool }
		if errors.As(err, &a) && a.PluginAnswered() {
			t.Errorf("%s: %v says the plugin answered", name, err)
		}
	}
}

func TestMachineUpdateFields(t *testing.T) {
	t1 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	zero := time.Time{}
	cases := []struct {
		name string
		u    MachineUpdate
	}{
		{"all nil", MachineUpdate{}},
		{"only if not final", MachineUpdate{OnlyIfNotFinal: true}},
		{"zero values are set, not nil", MachineUpdate{Status: ptr(""), ExitCode: ptr(0), Reason: ptr(""),
			SignalName: ptr(""), Error: ptr(""), PID: ptr(0), DispatchedAt: &zero, ConnectedAt: &zero,
			StartedAt: &zero, FinishedAt: &zero, LastHeartbeat: &zero, WrapperVersion: ptr(""),
			Protocol: ptr(0), LateExitCode: ptr(0), LateReason: ptr("")}},
		{"every field", MachineUpdate{Status: ptr(StatusLost), ExitCode: ptr(253), Reason: ptr("r"),
			SignalName: ptr("SIGKILL"), Error: ptr("e"), PID: ptr(1 << 40), DispatchedAt: &t1, ConnectedAt: &t1,
			StartedAt: &t1, FinishedAt: &t1, LastHeartbeat: &t1, WrapperVersion: ptr("2.1"),
			Protocol: ptr(2), LateExitCode: ptr(-1), LateReason: ptr("late"), OnlyIfNotFinal: true}},
		{"one time", MachineUpdate{LastHeartbeat: &t1}},
	}
	f := &fakeStore{}
	c := dial(t, f)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.client.UpdateMachine(context.Background(), "r", "m", tc.u); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			got := *f.machUpdate
			f.mu.Unlock()
			if !reflect.DeepEqual(got, tc.u) {
				t.Errorf("store got %s\nwant %s", dumpUpdate(got), dumpUpdate(tc.u))
			}
		})
	}
}

func TestRunUpdateFields(t *testing.T) {
	t1 := time.Date(2026, 3, 1, 12, 0, 0, 1, time.UTC)
	cases := []struct {
		name string
		u    RunUpdate
	}{
		{"all nil", RunUpdate{}},
		{"empty strings are set", RunUpdate{Status: ptr(""), Reason: ptr(""), KilledBy: ptr("")}},
		{"every field", RunUpdate{Status: ptr(StatusKilled), Reason: ptr("kill"), StartedAt: &t1, FinishedAt: &t1,
			KilledBy: ptr("bob"), KilledAt: &t1,
			AddAction: &Action{Kind: "signal", Machine: "m", Signal: "SIGTERM", Grace: 1500 * time.Millisecond, By: "ops", At: t1},
			Notifications: []Notification{{ID: "n1", Notifier: "slack", Job: "j", RunID: "r", Kind: "run_finished",
				Event: []byte(`{"status":"killed"}`), CreatedAt: t1, DueAt: t1}, {ID: "n2", Notifier: "mail", Event: []byte{}}}}},
	}
	f := &fakeStore{}
	c := dial(t, f)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.client.UpdateRun(context.Background(), "r", tc.u); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			got := *f.runUpdate
			f.mu.Unlock()
			if !reflect.DeepEqual(got, tc.u) {
				t.Errorf("store got %+v\nwant %+v", got, tc.u)
			}
		})
	}
}

func dumpUpdate(u MachineUpdate) string {
	v := reflect.ValueOf(u)
	var b strings.Builder
	for i := range v.NumField() {
		f := v.Field(i)
		fmt.Fprintf(&b, "%s=", v.Type().Field(i).Name)
		if f.Kind() == reflect.Pointer && !f.IsNil() {
			fmt.Fprintf(&b, "&%v ", f.Elem())
		} else {
			fmt.Fprintf(&b, "%v ", f)
		}
	}
	return b.String()
}

func TestRunRoundTrip(t *testing.T) {
	// Times to the nanosecond, in another zone than UTC: they come back
	// as the same instant, in UTC.
	zone := time.FixedZone("X", 5*3600+1800)
	local := time.Date(2026, 3, 1, 17, 30, 0, 999999999, zone)
	utc := local.UTC()
	cases := []struct {
		name     string
		run      Run
		wantSpec []byte
	}{
		{"zero", Run{ID: "r0"}, nil},
		{"empty spec stays empty", Run{ID: "r1", Spec: []byte{}}, []byte{}},
		{"full", Run{ID: "r2", Job: "j", Trigger: TriggerManual, ScheduledFor: local, StartedAt: local,
			FinishedAt: local, Status: StatusFailed, Reason: "why", RequestedBy: "alice", KilledBy: "bob", KilledAt: local,
			Actions: []Action{{Kind: "kill", Machine: "m", Signal: "SIGKILL", Grace: time.Second, By: "bob", At: local}},
			Spec:    []byte{0, 0xff, '{', '}'},
			Machines: []Machine{
				{RunID: "r2", Machine: "a", Status: StatusRunning},
				{RunID: "r2", Machine: "b", Status: StatusLost, ExitCode: ptr(253), Reason: "lost", SignalName: "SIGKILL",
					Error: "e", PID: 99, DispatchedAt: local, ConnectedAt: local, StartedAt: local, FinishedAt: local,
					LastHeartbeat: local, WrapperVersion: "2", Protocol: 2, OutputBytes: 12, NextSeq: 4,
					LateExitCode: ptr(0), LateReason: "exit"},
			}}, []byte{0, 0xff, '{', '}'}},
	}
	f := &fakeStore{}
	c := dial(t, f)
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.client.CreateRun(ctx, tc.run); err != nil {
				t.Fatal(err)
			}
			got, err := c.client.GetRun(ctx, tc.run.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.run
			want.Spec = tc.wantSpec
			if !want.ScheduledFor.IsZero() {
				want.ScheduledFor, want.StartedAt, want.FinishedAt, want.KilledAt = utc, utc, utc, utc
				want.Actions[0].At = utc
				m := &want.Machines[1]
				m.DispatchedAt, m.ConnectedAt, m.StartedAt, m.FinishedAt, m.LastHeartbeat = utc, utc, utc, utc, utc
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("GetRun = %+v\nwant %+v", got, want)
			}
			if (got.Spec == nil) != (tc.wantSpec == nil) {
				t.Errorf("Spec nil = %v, want %v", got.Spec == nil, tc.wantSpec == nil)
			}
		})
	}
}

func TestChunkBytesAndTimes(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 7, time.UTC)
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	cases := []struct {
		name string
		c    Chunk
	}{
		{"nil data", Chunk{Seq: 0, Stream: "stdout"}},
		{"empty data", Chunk{Seq: 1, Stream: "stdout", Data: []byte{}}},
		{"every byte", Chunk{Seq: 2, Stream: "stderr", Data: binary, At: at}},
	}
	f := &fakeStore{}
	c := dial(t, f)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next, err := c.client.AppendOutput(context.Background(), "r", "m", tc.c)
			if err != nil || next != tc.c.Seq+1 {
				t.Fatalf("AppendOutput = %d, %v", next, err)
			}
			f.mu.Lock()
			got := f.chunks[len(f.chunks)-1]
			f.mu.Unlock()
			if !reflect.DeepEqual(got, tc.c) {
				t.Errorf("store got %+v, want %+v", got, tc.c)
			}
		})
	}
}

func TestAppendOutputBatches(t *testing.T) {
	const callers = 64
	f := &fakeStore{
		appendGate:    make(chan struct{}),
		appendEntered: make(chan struct{}, 1),
		// Each caller's answer depends on its own chunk, so a mixed-up
		// delivery shows: even seqs succeed, odd ones are out of order.
		appendFn: func(_, machine string, c Chunk) (int64, error) {
			if c.Seq%2 == 1 {
				return c.Seq * 10, fmt.Errorf("%s seq %d: %w", machine, c.Seq, ErrOutOfOrder)
			}
			return c.Seq * 10, nil
		},
	}
	c := dial(t, f)
	queued := make(chan struct{})
	c.client.out.onQueue = func(n int) {
		if n == callers-1 {
			close(queued)
		}
	}
	type result struct {
		seq, next int64
		err       error
	}
	results := make(chan result, callers)
	call := func(seq int64) {
		next, err := c.client.AppendOutput(context.Background(), "r", fmt.Sprint("m", seq), Chunk{Seq: seq, Data: []byte{byte(seq)}})
		results <- result{seq, next, err}
	}
	// The first chunk holds the store busy; the others pile up behind it
	// and must go as one batch.
	go call(0)
	<-f.appendEntered
	for seq := int64(1); seq < callers; seq++ {
		go call(seq)
	}
	<-queued
	close(f.appendGate)
	for range callers {
		r := <-results
		if r.next != r.seq*10 {
			t.Errorf("seq %d: next %d, want %d: a result went to the wrong caller", r.seq, r.next, r.seq*10)
		}
		if wantErr := r.seq%2 == 1; wantErr != errors.Is(r.err, ErrOutOfOrder) || (!wantErr && r.err != nil) {
			t.Errorf("seq %d: err %v", r.seq, r.err)
		} else if wantErr && !strings.Contains(r.err.Error(), fmt.Sprintf("m%d seq %d", r.seq, r.seq)) {
			t.Errorf("seq %d: got another caller's error %q", r.seq, r.err)
		}
	}
	if got := c.batches.Load(); got != 2 {
		t.Errorf("%d calls went in %d batch messages, want 2 (the first, then the rest together)", callers, got)
	}
	f.mu.Lock()
	stored := len(f.chunks)
	f.mu.Unlock()
	if stored != callers {
		t.Errorf("store got %d chunks, want %d", stored, callers)
	}
}

func TestAppendBatchBounds(t *testing.T) {
	// take honours the item and byte bounds but always takes one item,
	// however big.
	big := make([]byte, maxBatchBytes)
	cases := []struct {
		name      string
		sizes     []int
		wantSizes []int // items per batch
	}{
		{"many small", repeat(10, maxBatchItems+3), []int{maxBatchItems, 3}},
		{"bytes bound", []int{maxBatchBytes / 2, maxBatchBytes / 2, 1}, []int{2, 1}},
		{"oversized alone", []int{1, maxBatchBytes, 1}, []int{1, 1, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := &appender{}
			for _, n := range tc.sizes {
				a.queue = append(a.queue, &appendCall{item: itemOf(big[:n])})
			}
			a.queue = append(a.queue[:1], append([]*appendCall{{item: itemOf(nil), abandoned: true}}, a.queue[1:]...)...)
			var got []int
			for {
				s := &session{sent: make(chan []*appendCall, 1)}
				b := a.take(s)
				if b == nil {
					break
				}
				got = append(got, len(b))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantSizes) {
				t.Errorf("batches of %v, want %v", got, tc.wantSizes)
			}
		})
	}
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func itemOf(data []byte) *storepb.AppendItem {
	return &storepb.AppendItem{Chunk: &storepb.Chunk{Data: data}}
}

func TestCloseEndsOutput(t *testing.T) {
	f := &fakeStore{}
	c := dial(t, f)
	ctx := context.Background()
	if _, err := c.client.AppendOutput(ctx, "r", "m", Chunk{}); err != nil {
		t.Fatal(err)
	}
	if err := c.client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if !closed {
		t.Error("Close did not reach the store")
	}
	if _, err := c.client.AppendOutput(ctx, "r", "m", Chunk{Seq: 1}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("AppendOutput after Close: %v, want ErrUnavailable", err)
	}
}

func TestConfigure(t *testing.T) {
	cases := []struct {
		name    string
		impl    Store
		config  string
		wantErr string
	}{
		{"no config, empty", &fakeStore{}, "{}", ""},
		{"no config, none", &fakeStore{}, "", ""},
		{"no config, refused", &fakeStore{}, `{"path":"x"}`, "takes no config"},
		{"configurer", &configurableStore{}, `{"path":"x"}`, ""},
		{"configurer refuses", &configurableStore{}, `{"bad":true}`, "bad config"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, tc.impl)
			err := c.client.Configure(context.Background(), []byte(tc.config))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Configure = %v, want %q", err, tc.wantErr)
			}
			if cs, ok := tc.impl.(*configurableStore); ok && string(cs.config) != tc.config {
				t.Errorf("store got config %q", cs.config)
			}
		})
	}
}

func TestFiresRoundTrip(t *testing.T) {
	// Slots to the nanosecond, in another zone than UTC: they arrive as
	// the same instant, in UTC; the zero time stays zero both ways.
	zone := time.FixedZone("X", -(3*3600 + 1800))
	local := time.Date(2026, 3, 1, 8, 59, 0, 123456789, zone)
	old := time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC) // just past the zero time
	cases := []struct {
		name   string
		job    string
		slot   time.Time
		runID  string
		fireOK bool
	}{
		{"recorded", "backup", local, "r1", true},
		{"refused", "backup", local, "r2", false},
		{"zero slot", "", time.Time{}, "", true},
		{"near zero", "j", old, "r3", false},
	}
	f := &fakeStore{}
	c := dial(t, f)
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.fireOK, f.lastFire = tc.fireOK, tc.slot
			f.mu.Unlock()
			ok, err := c.client.RecordFire(ctx, tc.job, tc.slot, tc.runID)
			if err != nil || ok != tc.fireOK {
				t.Fatalf("RecordFire = %v, %v; want %v", ok, err, tc.fireOK)
			}
			want := fireCall{tc.job, tc.slot.UTC(), tc.runID}
			if tc.slot.IsZero() {
				want.slot = time.Time{}
			}
			f.mu.Lock()
			got := f.fire
			f.mu.Unlock()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("store got %+v, want %+v", got, want)
			}
			last, err := c.client.LastFire(ctx, tc.job)
			if err != nil {
				t.Fatalf("LastFire: %v", err)
			}
			if !reflect.DeepEqual(last, want.slot) {
				t.Errorf("LastFire = %v (%#v), want %v", last, last, want.slot)
			}
		})
	}
}

func TestPruneRunsRoundTrip(t *testing.T) {
	// The time arrives as the same instant, in UTC, to the nanosecond; the
	// zero time stays zero; the count comes back whole.
	zone := time.FixedZone("X", -(3*3600 + 1800))
	cases := []struct {
		name   string
		before time.Time
		pruned int
	}{
		{"some", time.Date(2026, 3, 1, 8, 59, 0, 123456789, zone), 3},
		{"none", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 0},
		{"zero time", time.Time{}, 0},
		{"near zero", time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), 1},
		{"many", time.Unix(1<<33, 7), 1<<20 + 5},
	}
	f := &fakeStore{}
	c := dial(t, f)
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.pruned = tc.pruned
			f.mu.Unlock()
			n, err := c.client.PruneRuns(ctx, tc.before)
			if err != nil || n != tc.pruned {
				t.Fatalf("PruneRuns = %d, %v; want %d", n, err, tc.pruned)
			}
			want := tc.before.UTC()
			if tc.before.IsZero() {
				want = time.Time{}
			}
			f.mu.Lock()
			got := f.pruneBefore
			f.mu.Unlock()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("store got %v (%#v), want %v", got, got, want)
			}
		})
	}
}

func TestNotificationsRoundTrip(t *testing.T) {
	// Times to the nanosecond, in another zone than UTC, arrive as the
	// same instant in UTC; nil and empty events stay apart.
	zone := time.FixedZone("X", 5*3600+1800)
	local := time.Date(2026, 3, 1, 17, 30, 0, 999999999, zone)
	utc := local.UTC()
	ns := []Notification{
		{ID: "n1", Notifier: "slack", Job: "backup", RunID: "r1", Kind: "run_finished", Event: []byte{0, 0xff, '{'},
			CreatedAt: local, DueAt: local.Add(time.Second), Attempts: 3, LastError: "503", State: NotificationFailed,
			DeliveredAt: local},
		{ID: "n2", Notifier: "mail", Event: []byte{}},
		{ID: "n3"},
	}
	want := slices.Clone(ns)
	want[0].CreatedAt, want[0].DueAt, want[0].DeliveredAt = utc, utc.Add(time.Second), utc
	f := &fakeStore{notes: ns}
	c := dial(t, f)
	ctx := context.Background()
	check := func(what string, got []Notification) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
		}
		for i := range want {
			if i < len(got) && (got[i].Event == nil) != (want[i].Event == nil) {
				t.Errorf("%s: notification %d event nil = %v, want %v", what, i, got[i].Event == nil, want[i].Event == nil)
			}
		}
	}
	if err := c.client.EnqueueNotifications(ctx, ns); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	check("EnqueueNotifications", f.enqueued)
	f.mu.Unlock()

	claim := ClaimRequest{Owner: "core-1", Now: local, Lease: 90*time.Second + 1, Limit: 7}
	got, err := c.client.ClaimNotifications(ctx, claim)
	if err != nil {
		t.Fatal(err)
	}
	check("ClaimNotifications", got)
	claim.Now = utc
	f.mu.Lock()
	if f.claim != claim {
		t.Errorf("store got claim %+v, want %+v", f.claim, claim)
	}
	f.mu.Unlock()

	for _, r := range []NotificationResult{
		{Delivered: true, At: local},
		{Final: true, Error: "410 gone", At: local},
		{RetryAt: local.Add(time.Minute), Error: "timeout", At: local},
		{},
	} {
		if err := c.client.FinishNotification(ctx, "n1", "core-1", r); err != nil {
			t.Fatal(err)
		}
		wantR := r
		if !r.At.IsZero() {
			wantR.At = r.At.UTC()
		}
		if !r.RetryAt.IsZero() {
			wantR.RetryAt = r.RetryAt.UTC()
		}
		f.mu.Lock()
		if gotF := f.finish; gotF != (finishCall{"n1", "core-1", wantR}) {
			t.Errorf("store got finish %+v, want %+v", gotF, wantR)
		}
		f.mu.Unlock()
	}

	filter := NotificationFilter{State: NotificationFailed, Job: "backup", Limit: 9}
	got, err = c.client.ListNotifications(ctx, filter)
	if err != nil {
		t.Fatal(err)
	}
	check("ListNotifications", got)
	f.mu.Lock()
	if f.noteFilter != filter {
		t.Errorf("store got filter %+v, want %+v", f.noteFilter, filter)
	}
	f.mu.Unlock()
}

// oldPlugin is a store plugin built before the outbox: its service has
// UpdateRun but none of the outbox's methods.
type oldPlugin struct {
	storepb.UnimplementedStoreServer
	updates atomic.Int64
}

func (p *oldPlugin) UpdateRun(context.Context, *storepb.UpdateRunRequest) (*storepb.Empty, error) {
	p.updates.Add(1)
	return &storepb.Empty{}, nil
}

// TestOldPluginRefusesNotifications: an update with notifications never
// reaches a plugin that would drop them; it fails with ErrUnsupported,
// and so do the outbox's calls, as the plugin's answer (no restart).
func TestOldPluginRefusesNotifications(t *testing.T) {
	old := &oldPlugin{}
	c := dialOld(t, old)
	ctx := context.Background()
	if err := c.UpdateRun(ctx, "r1", RunUpdate{Status: ptr(StatusFailed)}); err != nil {
		t.Fatalf("UpdateRun without notifications: %v", err)
	}
	calls := map[string]func() error{
		"UpdateRun with notifications": func() error {
			return c.UpdateRun(ctx, "r1", RunUpdate{Status: ptr(StatusFailed), Notifications: []Notification{{ID: "n1"}}})
		},
		"EnqueueNotifications": func() error { return c.EnqueueNotifications(ctx, []Notification{{ID: "n1"}}) },
		"ClaimNotifications":   func() error { _, err := c.ClaimNotifications(ctx, ClaimRequest{Owner: "o"}); return err },
		"FinishNotification":   func() error { return c.FinishNotification(ctx, "n1", "o", NotificationResult{}) },
		"ListNotifications":    func() error { _, err := c.ListNotifications(ctx, NotificationFilter{}); return err },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s on an old plugin: %v, want ErrUnsupported", name, err)
		}
		var a interface{ PluginAnswered() bool }
		if !errors.As(err, &a) || !a.PluginAnswered() {
			t.Errorf("%s: %v does not say the plugin answered", name, err)
		}
	}
	if n := old.updates.Load(); n != 1 {
		t.Errorf("the old plugin got %d UpdateRun calls, want 1: an update with notifications reached it", n)
	}
}

// dialOld serves a plugin built with an older SDK over bufconn.
func dialOld(t *testing.T, old storepb.StoreServer, opts ...grpc.ServerOption) *GRPCClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(opts...)
	storepb.RegisterStoreServer(srv, old)
	go func() { _ = srv.Serve(lis) }()
	cc, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		srv.Stop()
	})
	return newGRPCClient(cc)
}

// TestOldPluginRefusesAudit: a plugin built before the audit log answers
// both audit calls with ErrUnsupported, as its own answer.
func TestOldPluginRefusesAudit(t *testing.T) {
	c := dialOld(t, &oldPlugin{})
	ctx := context.Background()
	calls := map[string]func() error{
		"AppendAudit": func() error {
			_, err := c.AppendAudit(ctx, AuditEntry{At: time.Unix(60, 0), By: "ops", Action: AuditRun})
			return err
		},
		"ListAudit": func() error { _, err := c.ListAudit(ctx, AuditFilter{}); return err },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s on an old plugin: %v, want ErrUnsupported", name, err)
		}
		var a interface{ PluginAnswered() bool }
		if !errors.As(err, &a) || !a.PluginAnswered() {
			t.Errorf("%s: %v does not say the plugin answered", name, err)
		}
	}
}

func TestAuditRoundTrip(t *testing.T) {
	// Every field crosses both ways; a time to the nanosecond, in another
	// zone than UTC, arrives as the same instant in UTC; the zero time and
	// empty strings stay as they are; the id comes back whole.
	zone := time.FixedZone("X", -(3*3600 + 1800))
	local := time.Date(2026, 3, 1, 8, 59, 0, 123456789, zone)
	full := AuditEntry{ID: 42, At: local, By: "alice", Action: AuditSignal, Via: "api", Remote: "192.0.2.7:51234",
		Job: "backup", RunID: "r1", Machine: "web1", Detail: "signal SIGINT, grace 30s", Outcome: AuditFailed,
		Error: "store down"}
	utc := full
	utc.At = local.UTC()
	f := &fakeStore{}
	c := dial(t, f)
	ctx := context.Background()
	cases := []struct {
		name    string
		e, want AuditEntry
		id      int64
	}{
		{"every field", full, utc, 1<<40 + 3},
		{"zero", AuditEntry{}, AuditEntry{}, 1},
	}
	for _, tc := range cases {
		t.Run("append "+tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.auditID = tc.id
			f.mu.Unlock()
			id, err := c.client.AppendAudit(ctx, tc.e)
			if err != nil || id != tc.id {
				t.Fatalf("AppendAudit = %d, %v; want %d", id, err, tc.id)
			}
			f.mu.Lock()
			got := f.audit
			f.mu.Unlock()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("store got %+v\nwant %+v", got, tc.want)
			}
		})
	}

	filters := []AuditFilter{
		{Job: "backup", By: "alice", Action: AuditSignal, BeforeID: 1 << 40, Limit: 7},
		{},
	}
	for _, answer := range [][]AuditEntry{{utc, {ID: 1}}, nil} {
		for _, filter := range filters {
			f.mu.Lock()
			f.audits = answer
			f.mu.Unlock()
			got, err := c.client.ListAudit(ctx, filter)
			if err != nil {
				t.Fatalf("ListAudit(%+v): %v", filter, err)
			}
			if len(got) != len(answer) || len(answer) > 0 && !reflect.DeepEqual(got, answer) {
				t.Errorf("ListAudit(%+v) = %+v, want %+v", filter, got, answer)
			}
			f.mu.Lock()
			if f.auditFilter != filter {
				t.Errorf("store got filter %+v, want %+v", f.auditFilter, filter)
			}
			f.mu.Unlock()
		}
	}
}

// TestOldPluginRefusesLastRuns: a plugin built before LastRuns and
// LastFires answers both with ErrUnsupported, as its own answer (no
// restart), so that the core asks job by job instead.
func TestOldPluginRefusesLastRuns(t *testing.T) {
	c := dialOld(t, &oldPlugin{})
	ctx := context.Background()
	calls := map[string]func() error{
		"LastRuns": func() error {
			_, err := c.LastRuns(ctx, LastRunsQuery{Jobs: []string{"backup"}, Machines: 50})
			return err
		},
		"LastFires": func() error { _, err := c.LastFires(ctx, []string{"backup"}); return err },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s on an old plugin: %v, want ErrUnsupported", name, err)
		}
		var a interface{ PluginAnswered() bool }
		if !errors.As(err, &a) || !a.PluginAnswered() {
			t.Errorf("%s: %v does not say the plugin answered", name, err)
		}
	}
}

func TestLastRunsRoundTrip(t *testing.T) {
	// The query reaches the store as sent; each summary comes back with
	// its run's every field, its machines in order and its counts; an
	// empty answer is an empty slice, and a summary without counts has an
	// empty map.
	local := time.Date(2026, 3, 1, 8, 59, 0, 123456789, time.FixedZone("X", -(3*3600+1800)))
	run := Run{ID: "r1", Job: "backup", Trigger: TriggerManual, ScheduledFor: local, StartedAt: local.Add(time.Second),
		FinishedAt: local.Add(time.Minute), Status: StatusFailed, Reason: "exit 3", RequestedBy: "alice",
		KilledBy: "bob", KilledAt: local.Add(30 * time.Second), Spec: []byte(`{"command":"x"}`),
		Actions: []Action{{Kind: "kill", Machine: "db2", Signal: "SIGTERM", Grace: time.Second, By: "bob", At: local}},
		Machines: []Machine{
			{RunID: "r1", Machine: "db1", Status: StatusSucceeded, ExitCode: ptr(0), StartedAt: local, OutputBytes: 7},
			{RunID: "r1", Machine: "db2", Status: StatusFailed, ExitCode: ptr(3), Reason: "exit 3", NextSeq: 2},
		}}
	utc := run
	for _, p := range []*time.Time{&utc.ScheduledFor, &utc.StartedAt, &utc.FinishedAt, &utc.KilledAt} {
		*p = p.UTC()
	}
	utc.Actions = []Action{run.Actions[0]}
	utc.Actions[0].At = local.UTC()
	utc.Machines = slices.Clone(run.Machines)
	utc.Machines[0].StartedAt = local.UTC()
	bare := Run{ID: "r2", Job: "report"}
	cases := []struct {
		name   string
		q      LastRunsQuery
		answer []RunSummary
		want   []RunSummary
	}{
		{"summaries", LastRunsQuery{Jobs: []string{"backup", "report"}, Machines: 50},
			[]RunSummary{{Run: run, MachineCounts: map[string]int{StatusSucceeded: 1, StatusFailed: 1, StatusRunning: 10000}},
				{Run: bare}},
			[]RunSummary{{Run: utc, MachineCounts: map[string]int{StatusSucceeded: 1, StatusFailed: 1, StatusRunning: 10000}},
				{Run: bare, MachineCounts: map[string]int{}}}},
		{"every job, none", LastRunsQuery{}, nil, []RunSummary{}},
	}
	f := &fakeStore{}
	c := dial(t, f)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.summaries = tc.answer
			f.mu.Unlock()
			got, err := c.client.LastRuns(context.Background(), tc.q)
			if err != nil {
				t.Fatalf("LastRuns: %v", err)
			}
			if got == nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("LastRuns = %+v\nwant %+v", got, tc.want)
			}
			f.mu.Lock()
			q := f.lastRunsQuery
			f.mu.Unlock()
			if !slices.Equal(q.Jobs, tc.q.Jobs) || q.Machines != tc.q.Machines {
				t.Errorf("store got %+v, want %+v", q, tc.q)
			}
		})
	}
}

// TestLastRunsLargeAnswer: an answer past gRPC's default 4 MB limit
// (thousands of jobs, each with its first machines) arrives whole.
func TestLastRunsLargeAnswer(t *testing.T) {
	const jobs, machines = 2000, 50
	reason := strings.Repeat("r", 60)
	answer := make([]RunSummary, jobs)
	for j := range answer {
		run := Run{ID: fmt.Sprintf("run-%04d", j), Job: fmt.Sprintf("job-%04d", j), Status: StatusFailed}
		for m := range machines {
			run.Machines = append(run.Machines, Machine{RunID: run.ID, Machine: fmt.Sprintf("host-%03d", m),
				Status: StatusFailed, ExitCode: ptr(1), Reason: reason})
		}
		answer[j] = RunSummary{Run: run, MachineCounts: map[string]int{StatusFailed: machines}}
	}
	f := &fakeStore{summaries: answer}
	c := dial(t, f)
	got, err := c.client.LastRuns(context.Background(), LastRunsQuery{Machines: machines})
	if err != nil {
		t.Fatalf("LastRuns of %d jobs of %d machines: %v", jobs, machines, err)
	}
	if len(got) != jobs || !reflect.DeepEqual(got[jobs-1], answer[jobs-1]) {
		t.Errorf("LastRuns answered %d summaries, the last %+v", len(got), got[len(got)-1])
	}
}

func TestLastFiresRoundTrip(t *testing.T) {
	// Slots to the nanosecond, in another zone than UTC, arrive as the
	// same instant in UTC; a zero slot (no store records one) is no
	// entry; none is an empty map.
	local := time.Date(2026, 3, 1, 8, 59, 0, 123456789, time.FixedZone("X", 3600))
	cases := []struct {
		name   string
		jobs   []string
		answer map[string]time.Time
		want   map[string]time.Time
	}{
		{"slots", []string{"a", "b", "c"}, map[string]time.Time{"a": local, "b": local.Add(-time.Hour), "c": {}},
			map[string]time.Time{"a": local.UTC(), "b": local.Add(-time.Hour).UTC()}},
		{"none", nil, nil, map[string]time.Time{}},
	}
	f := &fakeStore{}
	c := dial(t, f)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.slots = tc.answer
			f.mu.Unlock()
			got, err := c.client.LastFires(context.Background(), tc.jobs)
			if err != nil {
				t.Fatalf("LastFires: %v", err)
			}
			if got == nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("LastFires = %v, want %v", got, tc.want)
			}
			f.mu.Lock()
			jobs := f.firesJobs
			f.mu.Unlock()
			if !slices.Equal(jobs, tc.jobs) {
				t.Errorf("store got jobs %q, want %q", jobs, tc.jobs)
			}
		})
	}
}

func TestSummarizeRun(t *testing.T) {
	run := Run{ID: "r", Machines: []Machine{{Machine: "b", Status: StatusFailed}, {Machine: "C", Status: StatusRunning},
		{Machine: "a", Status: StatusFailed}}}
	cases := []struct {
		machines int
		want     []string
	}{
		{0, []string{}},
		{-1, []string{}},
		{2, []string{"C", "a"}},
		{3, []string{"C", "a", "b"}},
		{9, []string{"C", "a", "b"}},
	}
	for _, tc := range cases {
		got := SummarizeRun(run, tc.machines)
		names := []string{}
		for _, m := range got.Run.Machines {
			names = append(names, m.Machine)
		}
		if !slices.Equal(names, tc.want) || got.Run.Machines == nil {
			t.Errorf("SummarizeRun(%d) machines = %q, want %q", tc.machines, names, tc.want)
		}
		if c := got.MachineCounts; len(c) != 2 || c[StatusFailed] != 2 || c[StatusRunning] != 1 {
			t.Errorf("SummarizeRun(%d) counts = %v, want 2 failed and 1 running", tc.machines, c)
		}
	}
	if run.Machines[0].Machine != "b" {
		t.Errorf("SummarizeRun reordered the caller's machines: %+v", run.Machines)
	}
	if got := SummarizeRun(Run{ID: "none"}, 5); got.MachineCounts == nil || len(got.MachineCounts) != 0 || len(got.Run.Machines) != 0 {
		t.Errorf("SummarizeRun of a run without machines = %+v", got)
	}
}
