package store

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// This file converts between the Go types of store.go and their protobuf
// messages, both ways, so that client.go and server.go stay one call per
// method. Every conversion keeps what the Go side can tell apart: times to
// the nanosecond (returned in UTC), nil pointers as absent fields, nil
// byte slices apart from empty ones.

// pbTime encodes t; the zero time is absent, so that an unset time costs
// nothing on the wire and decodes to the zero time again.
func pbTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// goTime decodes a time; absent is the zero time.
func goTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// pbTimePtr encodes an update's time: nil is absent, anything else (even
// the zero time, which then must be told apart from "unset") is present.
func pbTimePtr(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

func goTimePtr(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime()
	if t.Equal(time.Time{}) {
		t = time.Time{}
	}
	return &t
}

func pbIntPtr(p *int) *int64 {
	if p == nil {
		return nil
	}
	v := int64(*p)
	return &v
}

func goIntPtr(p *int64) *int {
	if p == nil {
		return nil
	}
	v := int(*p)
	return &v
}

// copyPtr copies a pointer's value, so the message does not alias the
// caller's variable.
func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func pbAction(a Action) *storepb.Action {
	return &storepb.Action{Kind: a.Kind, Machine: a.Machine, Signal: a.Signal,
		GraceNanos: int64(a.Grace), By: a.By, At: pbTime(a.At)}
}

func goAction(a *storepb.Action) Action {
	return Action{Kind: a.GetKind(), Machine: a.GetMachine(), Signal: a.GetSignal(),
		Grace: time.Duration(a.GetGraceNanos()), By: a.GetBy(), At: goTime(a.GetAt())}
}

func pbMachine(m Machine) *storepb.Machine {
	return &storepb.Machine{
		RunId: m.RunID, Machine: m.Machine, Status: m.Status, ExitCode: pbIntPtr(m.ExitCode),
		Reason: m.Reason, SignalName: m.SignalName, Error: m.Error, Pid: int64(m.PID),
		DispatchedAt: pbTime(m.DispatchedAt), ConnectedAt: pbTime(m.ConnectedAt),
		StartedAt: pbTime(m.StartedAt), FinishedAt: pbTime(m.FinishedAt),
		LastHeartbeat: pbTime(m.LastHeartbeat), WrapperVersion: m.WrapperVersion,
		Protocol: int64(m.Protocol), OutputBytes: m.OutputBytes, NextSeq: m.NextSeq,
		LateExitCode: pbIntPtr(m.LateExitCode), LateReason: m.LateReason,
		OutputDropped: m.OutputDropped, OutputCap: m.OutputCap,
	}
}

func goMachine(m *storepb.Machine) Machine {
	return Machine{
		RunID: m.GetRunId(), Machine: m.GetMachine(), Status: m.GetStatus(), ExitCode: goIntPtr(m.ExitCode),
		Reason: m.GetReason(), SignalName: m.GetSignalName(), Error: m.GetError(), PID: int(m.GetPid()),
		DispatchedAt: goTime(m.GetDispatchedAt()), ConnectedAt: goTime(m.GetConnectedAt()),
		StartedAt: goTime(m.GetStartedAt()), FinishedAt: goTime(m.GetFinishedAt()),
		LastHeartbeat: goTime(m.GetLastHeartbeat()), WrapperVersion: m.GetWrapperVersion(),
		Protocol: int(m.GetProtocol()), OutputBytes: m.GetOutputBytes(), NextSeq: m.GetNextSeq(),
		LateExitCode: goIntPtr(m.LateExitCode), LateReason: m.GetLateReason(),
		OutputDropped: m.GetOutputDropped(), OutputCap: m.GetOutputCap(),
	}
}

func pbMachines(ms []Machine) []*storepb.Machine {
	if ms == nil {
		return nil
	}
	out := make([]*storepb.Machine, len(ms))
	for i, m := range ms {
		out[i] = pbMachine(m)
	}
	return out
}

func goMachines(ms []*storepb.Machine) []Machine {
	if len(ms) == 0 {
		return nil
	}
	out := make([]Machine, len(ms))
	for i, m := range ms {
		out[i] = goMachine(m)
	}
	return out
}

func pbRun(r Run) *storepb.Run {
	acts := make([]*storepb.Action, len(r.Actions))
	for i, a := range r.Actions {
		acts[i] = pbAction(a)
	}
	return &storepb.Run{
		Id: r.ID, Job: r.Job, Trigger: r.Trigger, ScheduledFor: pbTime(r.ScheduledFor),
		StartedAt: pbTime(r.StartedAt), FinishedAt: pbTime(r.FinishedAt), Status: r.Status,
		Reason: r.Reason, RequestedBy: r.RequestedBy, KilledBy: r.KilledBy, KilledAt: pbTime(r.KilledAt),
		Actions: acts, Spec: r.Spec, Machines: pbMachines(r.Machines),
	}
}

func goRun(r *storepb.Run) Run {
	var acts []Action
	if len(r.GetActions()) > 0 {
		acts = make([]Action, len(r.GetActions()))
		for i, a := range r.GetActions() {
			acts[i] = goAction(a)
		}
	}
	return Run{
		ID: r.GetId(), Job: r.GetJob(), Trigger: r.GetTrigger(), ScheduledFor: goTime(r.GetScheduledFor()),
		StartedAt: goTime(r.GetStartedAt()), FinishedAt: goTime(r.GetFinishedAt()), Status: r.GetStatus(),
		Reason: r.GetReason(), RequestedBy: r.GetRequestedBy(), KilledBy: r.GetKilledBy(),
		KilledAt: goTime(r.GetKilledAt()), Actions: acts, Spec: r.Spec, Machines: goMachines(r.GetMachines()),
	}
}

func pbRunUpdate(u RunUpdate) *storepb.RunUpdate {
	pu := &storepb.RunUpdate{
		Status: copyPtr(u.Status), Reason: copyPtr(u.Reason), StartedAt: pbTimePtr(u.StartedAt),
		FinishedAt: pbTimePtr(u.FinishedAt), KilledBy: copyPtr(u.KilledBy), KilledAt: pbTimePtr(u.KilledAt),
	}
	if u.AddAction != nil {
		pu.AddAction = pbAction(*u.AddAction)
	}
	pu.Notifications = pbNotifications(u.Notifications)
	return pu
}

func goRunUpdate(u *storepb.RunUpdate) RunUpdate {
	gu := RunUpdate{
		Status: copyPtr(u.Status), Reason: copyPtr(u.Reason), StartedAt: goTimePtr(u.GetStartedAt()),
		FinishedAt: goTimePtr(u.GetFinishedAt()), KilledBy: copyPtr(u.KilledBy), KilledAt: goTimePtr(u.GetKilledAt()),
	}
	if a := u.GetAddAction(); a != nil {
		ga := goAction(a)
		gu.AddAction = &ga
	}
	gu.Notifications = goNotifications(u.GetNotifications())
	return gu
}

func pbMachineUpdate(u MachineUpdate) *storepb.MachineUpdate {
	return &storepb.MachineUpdate{
		Status: copyPtr(u.Status), ExitCode: pbIntPtr(u.ExitCode), Reason: copyPtr(u.Reason),
		SignalName: copyPtr(u.SignalName), Error: copyPtr(u.Error), Pid: pbIntPtr(u.PID),
		DispatchedAt: pbTimePtr(u.DispatchedAt), ConnectedAt: pbTimePtr(u.ConnectedAt),
		StartedAt: pbTimePtr(u.StartedAt), FinishedAt: pbTimePtr(u.FinishedAt),
		LastHeartbeat: pbTimePtr(u.LastHeartbeat), WrapperVersion: copyPtr(u.WrapperVersion),
		Protocol: pbIntPtr(u.Protocol), LateExitCode: pbIntPtr(u.LateExitCode),
		LateReason: copyPtr(u.LateReason), OnlyIfNotFinal: u.OnlyIfNotFinal,
	}
}

func goMachineUpdate(u *storepb.MachineUpdate) MachineUpdate {
	return MachineUpdate{
		Status: copyPtr(u.Status), ExitCode: goIntPtr(u.ExitCode), Reason: copyPtr(u.Reason),
		SignalName: copyPtr(u.SignalName), Error: copyPtr(u.Error), PID: goIntPtr(u.Pid),
		DispatchedAt: goTimePtr(u.GetDispatchedAt()), ConnectedAt: goTimePtr(u.GetConnectedAt()),
		StartedAt: goTimePtr(u.GetStartedAt()), FinishedAt: goTimePtr(u.GetFinishedAt()),
		LastHeartbeat: goTimePtr(u.GetLastHeartbeat()), WrapperVersion: copyPtr(u.WrapperVersion),
		Protocol: goIntPtr(u.Protocol), LateExitCode: goIntPtr(u.LateExitCode),
		LateReason: copyPtr(u.LateReason), OnlyIfNotFinal: u.GetOnlyIfNotFinal(),
	}
}

// goMachineChange is an UpdateMachine request; an absent update changes
// nothing.
func goMachineChange(req *storepb.UpdateMachineRequest) MachineChange {
	u := req.GetUpdate()
	if u == nil {
		u = &storepb.MachineUpdate{}
	}
	return MachineChange{RunID: req.GetRunId(), Machine: req.GetMachine(), Update: goMachineUpdate(u)}
}

func pbChunk(c Chunk) *storepb.Chunk {
	return &storepb.Chunk{Seq: c.Seq, Stream: c.Stream, Data: c.Data, At: pbTime(c.At)}
}

func goChunk(c *storepb.Chunk) Chunk {
	return Chunk{Seq: c.GetSeq(), Stream: c.GetStream(), Data: c.Data, At: goTime(c.GetAt())}
}

func pbOverride(o JobOverride) *storepb.JobOverride {
	return &storepb.JobOverride{Job: o.Job, Enabled: o.Enabled, SetBy: o.SetBy, SetAt: pbTime(o.SetAt)}
}

func goOverride(o *storepb.JobOverride) JobOverride {
	return JobOverride{Job: o.GetJob(), Enabled: o.GetEnabled(), SetBy: o.GetSetBy(), SetAt: goTime(o.GetSetAt())}
}

func pbMaintenance(m Maintenance) *storepb.Maintenance {
	return &storepb.Maintenance{Global: m.Global, Machines: m.Machines, SetBy: m.SetBy, SetAt: pbTime(m.SetAt)}
}

func goMaintenance(m *storepb.Maintenance) Maintenance {
	return Maintenance{Global: m.GetGlobal(), Machines: m.GetMachines(), SetBy: m.GetSetBy(), SetAt: goTime(m.GetSetAt())}
}

func pbNotification(n Notification) *storepb.Notification {
	return &storepb.Notification{
		Id: n.ID, Notifier: n.Notifier, Job: n.Job, RunId: n.RunID, Kind: n.Kind, Event: n.Event,
		CreatedAt: pbTime(n.CreatedAt), DueAt: pbTime(n.DueAt), Attempts: int64(n.Attempts),
		LastError: n.LastError, State: n.State, DeliveredAt: pbTime(n.DeliveredAt),
	}
}

func goNotification(n *storepb.Notification) Notification {
	return Notification{
		ID: n.GetId(), Notifier: n.GetNotifier(), Job: n.GetJob(), RunID: n.GetRunId(), Kind: n.GetKind(),
		Event: n.Event, CreatedAt: goTime(n.GetCreatedAt()), DueAt: goTime(n.GetDueAt()),
		Attempts: int(n.GetAttempts()), LastError: n.GetLastError(), State: n.GetState(),
		DeliveredAt: goTime(n.GetDeliveredAt()),
	}
}

func pbNotifications(ns []Notification) []*storepb.Notification {
	if ns == nil {
		return nil
	}
	out := make([]*storepb.Notification, len(ns))
	for i, n := range ns {
		out[i] = pbNotification(n)
	}
	return out
}

func goNotifications(ns []*storepb.Notification) []Notification {
	if len(ns) == 0 {
		return nil
	}
	out := make([]Notification, len(ns))
	for i, n := range ns {
		out[i] = goNotification(n)
	}
	return out
}

func pbClaim(r ClaimRequest) *storepb.ClaimNotificationsRequest {
	return &storepb.ClaimNotificationsRequest{Owner: r.Owner, Now: pbTime(r.Now),
		LeaseNanos: int64(r.Lease), Limit: int64(r.Limit)}
}

func goClaim(r *storepb.ClaimNotificationsRequest) ClaimRequest {
	return ClaimRequest{Owner: r.GetOwner(), Now: goTime(r.GetNow()),
		Lease: time.Duration(r.GetLeaseNanos()), Limit: int(r.GetLimit())}
}

func pbResult(r NotificationResult) *storepb.NotificationResult {
	return &storepb.NotificationResult{Delivered: r.Delivered, Final: r.Final,
		RetryAt: pbTime(r.RetryAt), Error: r.Error, At: pbTime(r.At)}
}

func goResult(r *storepb.NotificationResult) NotificationResult {
	return NotificationResult{Delivered: r.GetDelivered(), Final: r.GetFinal(),
		RetryAt: goTime(r.GetRetryAt()), Error: r.GetError(), At: goTime(r.GetAt())}
}

func pbAudit(e AuditEntry) *storepb.AuditEntry {
	return &storepb.AuditEntry{Id: e.ID, At: pbTime(e.At), By: e.By, Action: e.Action, Via: e.Via,
		Remote: e.Remote, Job: e.Job, RunId: e.RunID, Machine: e.Machine, Detail: e.Detail,
		Outcome: e.Outcome, Error: e.Error}
}

func goAudit(e *storepb.AuditEntry) AuditEntry {
	return AuditEntry{ID: e.GetId(), At: goTime(e.GetAt()), By: e.GetBy(), Action: e.GetAction(),
		Via: e.GetVia(), Remote: e.GetRemote(), Job: e.GetJob(), RunID: e.GetRunId(), Machine: e.GetMachine(),
		Detail: e.GetDetail(), Outcome: e.GetOutcome(), Error: e.GetError()}
}

func pbAudits(es []AuditEntry) []*storepb.AuditEntry {
	out := make([]*storepb.AuditEntry, len(es))
	for i, e := range es {
		out[i] = pbAudit(e)
	}
	return out
}

// goAudits decodes a listing; none is an empty slice, as a store answers.
func goAudits(es []*storepb.AuditEntry) []AuditEntry {
	out := make([]AuditEntry, len(es))
	for i, e := range es {
		out[i] = goAudit(e)
	}
	return out
}

func pbAuditFilter(f AuditFilter) *storepb.AuditFilter {
	return &storepb.AuditFilter{Job: f.Job, By: f.By, Action: f.Action, BeforeId: f.BeforeID, Limit: int64(f.Limit)}
}

func goAuditFilter(f *storepb.AuditFilter) AuditFilter {
	return AuditFilter{Job: f.GetJob(), By: f.GetBy(), Action: f.GetAction(), BeforeID: f.GetBeforeId(),
		Limit: int(f.GetLimit())}
}

func pbRunSummaries(rs []RunSummary) []*storepb.RunSummary {
	out := make([]*storepb.RunSummary, len(rs))
	for i, r := range rs {
		counts := make(map[string]int64, len(r.MachineCounts))
		for st, n := range r.MachineCounts {
			counts[st] = int64(n)
		}
		out[i] = &storepb.RunSummary{Run: pbRun(r.Run), MachineCounts: counts}
	}
	return out
}

// goRunSummaries decodes a LastRuns answer; none is an empty slice, and
// every summary's counts a map, as a store answers.
func goRunSummaries(rs []*storepb.RunSummary) []RunSummary {
	out := make([]RunSummary, len(rs))
	for i, r := range rs {
		counts := make(map[string]int, len(r.GetMachineCounts()))
		for st, n := range r.GetMachineCounts() {
			counts[st] = int(n)
		}
		run := r.GetRun()
		if run == nil {
			run = &storepb.Run{}
		}
		out[i] = RunSummary{Run: goRun(run), MachineCounts: counts}
	}
	return out
}

// pbSlots encodes LastFires's answer. A zero slot is no slot (no store
// records one), so it is left out rather than sent as a map entry
// without a value, which would decode as 1970.
func pbSlots(slots map[string]time.Time) map[string]*timestamppb.Timestamp {
	out := make(map[string]*timestamppb.Timestamp, len(slots))
	for job, t := range slots {
		if !t.IsZero() {
			out[job] = pbTime(t)
		}
	}
	return out
}

// goSlots decodes LastFires's answer; none is an empty map, and an entry
// without a slot is no entry.
func goSlots(slots map[string]*timestamppb.Timestamp) map[string]time.Time {
	out := make(map[string]time.Time, len(slots))
	for job, ts := range slots {
		if ts != nil {
			out[job] = goTime(ts)
		}
	}
	return out
}
