package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// hostedStore is a store plugin as the core sees it: each call goes to the
// plugin's current process, restarted when it died, and a call that
// failed because the plugin died is retried once. A retry may follow a
// first try that took effect before the plugin died (a durable store
// committed it, then crashed before answering), so each method says why
// its retry is safe:
//
//   - reads (GetRun, ListRuns, LastRuns, ReadOutput, Overrides,
//     GetMaintenance, LastFire, LastFires, ListNotifications, ListAudit,
//     Ping) change nothing;
//   - AppendOutput is idempotent: a chunk below the machine's next seq is
//     a duplicate that returns the next seq and stores nothing;
//   - SetOverride, DeleteOverride, SetMaintenance, DeleteMaintenance and
//     UpdateMachine set values, so doing them twice is doing them once;
//     UpdateMachine with OnlyIfNotFinal may then meet its own final
//     status and answer ErrFinal, which counts as success when the stored
//     status is the one asked for;
//   - FireRun may meet its own first try and answer false; the run it
//     finds stored then tells (see FireRun);
//   - CreateRun and AddMachines may meet their own first try and answer
//     ErrExists, which counts as success only when what is stored is what
//     was asked for (a run's id is unique per firing, so the same id, job,
//     trigger, schedule and spec, with the same machines, is this run);
//   - UpdateRun with AddAction appends, so before retrying it checks
//     whether the run's last action is already that action and, if so,
//     retries without it. Its Notifications are enqueued by id, and an id
//     already stored is left as it is, so a retry after a first try that
//     committed stores none twice;
//   - EnqueueNotifications is idempotent the same way;
//   - ClaimNotifications may follow a first try that leased rows the
//     core never saw. The retry does not get them (they are leased), and
//     nobody delivers them until that lease expires; then any owner
//     claims them again. So they are delayed by at most one lease, never
//     lost and never delivered twice;
//   - FinishNotification may meet its own first try: the store answers
//     nil when the notification was last finished by this owner with this
//     very result (store.CheckFinish), so the retry answers as the first
//     try would have. ErrLeaseLost after a retry means what it says:
//     another owner holds the notification now;
//   - RecordFire may meet its own first try and answer false. That would
//     count as true only when the recorded fire is this runID, but the
//     store cannot read a fire's run back, so a retried RecordFire that
//     answers false stands as false: "already fired". At worst that skips
//     one firing of the slot and never fires it twice, which is the safe
//     direction (a slot fires at most once);
//   - PruneRuns deletes what finished before a fixed time, so pruning
//     twice deletes nothing more than pruning once. The retry's count is
//     only what the retry deleted: runs the first try deleted before the
//     plugin died are not counted again;
//   - AppendAudit appends, so before retrying it looks among the newest
//     entries of the same token, action and job for this very entry
//     (every field, the same instant): found, the first try stored it
//     and its id is the answer; not found, the retry appends.
type hostedStore struct {
	m *managed
}

var _ store.Store = (*hostedStore)(nil)

// callStore runs f on the plugin's store; retried as for managed.call.
func (s *hostedStore) callStore(ctx context.Context, f func(st store.Store, attempt int) error) (retried bool, err error) {
	attempt := 0
	return s.m.call(ctx, func(impl any) error {
		attempt++
		return f(impl.(store.Store), attempt)
	})
}

// CreateRun implements store.Store.
func (s *hostedStore) CreateRun(ctx context.Context, run store.Run) error {
	var stored store.Run
	retried, err := s.callStore(ctx, func(st store.Store, attempt int) error {
		err := st.CreateRun(ctx, run)
		if attempt > 1 && errors.Is(err, store.ErrExists) {
			var gerr error
			if stored, gerr = st.GetRun(ctx, run.ID); gerr != nil {
				return err
			}
		}
		return err
	})
	if retried && errors.Is(err, store.ErrExists) && sameRun(stored, run) {
		s.m.log.Debug("CreateRun retried after the plugin died met the run it had created", "run", run.ID)
		return nil
	}
	return err
}

// sameRun reports whether stored is the run that CreateRun(want) makes.
func sameRun(stored, want store.Run) bool {
	if stored.ID != want.ID || stored.Job != want.Job || stored.Trigger != want.Trigger ||
		!stored.ScheduledFor.Equal(want.ScheduledFor) || !bytes.Equal(stored.Spec, want.Spec) ||
		len(stored.Machines) != len(want.Machines) {
		return false
	}
	for i := range want.Machines {
		if stored.Machines[i].Machine != want.Machines[i].Machine {
			return false
		}
	}
	return true
}

// AddMachines implements store.Store.
func (s *hostedStore) AddMachines(ctx context.Context, runID string, machines []store.Machine) error {
	var stored store.Run
	retried, err := s.callStore(ctx, func(st store.Store, attempt int) error {
		err := st.AddMachines(ctx, runID, machines)
		if attempt > 1 && errors.Is(err, store.ErrExists) {
			var gerr error
			if stored, gerr = st.GetRun(ctx, runID); gerr != nil {
				return err
			}
		}
		return err
	})
	if retried && errors.Is(err, store.ErrExists) && hasMachines(stored, machines) {
		return nil
	}
	return err
}

// hasMachines reports whether run has every one of machines. AddMachines
// adds all or none, so all present after a refused retry means the first
// try added them.
func hasMachines(run store.Run, machines []store.Machine) bool {
	for _, want := range machines {
		if !slices.ContainsFunc(run.Machines, func(m store.Machine) bool { return m.Machine == want.Machine }) {
			return false
		}
	}
	return len(machines) > 0
}

// UpdateRun implements store.Store.
func (s *hostedStore) UpdateRun(ctx context.Context, runID string, u store.RunUpdate) error {
	_, err := s.callStore(ctx, func(st store.Store, attempt int) error {
		u := u
		if attempt > 1 && u.AddAction != nil {
			r, err := st.GetRun(ctx, runID)
			if err != nil {
				return err
			}
			if n := len(r.Actions); n > 0 && sameAction(r.Actions[n-1], *u.AddAction) {
				u.AddAction = nil
			}
		}
		return st.UpdateRun(ctx, runID, u)
	})
	return err
}

func sameAction(a, b store.Action) bool {
	return a.Kind == b.Kind && a.Machine == b.Machine && a.Signal == b.Signal &&
		a.Grace == b.Grace && a.By == b.By && a.At.Equal(b.At)
}

// UpdateMachine implements store.Store.
func (s *hostedStore) UpdateMachine(ctx context.Context, runID, machine string, u store.MachineUpdate) error {
	var stored store.Run
	retried, err := s.callStore(ctx, func(st store.Store, attempt int) error {
		err := st.UpdateMachine(ctx, runID, machine, u)
		if attempt > 1 && errors.Is(err, store.ErrFinal) {
			var gerr error
			if stored, gerr = st.GetRun(ctx, runID); gerr != nil {
				return err
			}
		}
		return err
	})
	if retried && errors.Is(err, store.ErrFinal) && u.Status != nil {
		for _, m := range stored.Machines {
			if m.Machine == machine && m.Status == *u.Status {
				return nil
			}
		}
	}
	return err
}

// UpdateMachines implements store.MachineBatcher: one round trip and, in
// a store that can, one commit for the whole batch. A batch whose first
// failure is the plugin's death is applied again, whole, on the restarted
// plugin, and a change refused then because its machine is final counts
// as applied when the store holds the status it set, as in UpdateMachine.
func (s *hostedStore) UpdateMachines(ctx context.Context, batch []store.MachineChange) []error {
	var errs []error
	stored := map[string]store.Run{} // read back after a retry met final machines
	retried, err := s.callStore(ctx, func(st store.Store, attempt int) error {
		errs = store.UpdateBatch(ctx, st, batch)
		var first error
		for i, err := range errs {
			if err == nil {
				continue
			}
			if first == nil {
				first = err
			}
			run := batch[i].RunID
			if _, read := stored[run]; attempt > 1 && !read && errors.Is(err, store.ErrFinal) {
				if r, gerr := st.GetRun(ctx, run); gerr == nil {
					stored[run] = r
				}
			}
		}
		return first
	})
	if errs == nil {
		errs = make([]error, len(batch))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if retried {
		for i, err := range errs {
			c := batch[i]
			if errors.Is(err, store.ErrFinal) && c.Update.Status != nil && slices.ContainsFunc(stored[c.RunID].Machines,
				func(m store.Machine) bool { return m.Machine == c.Machine && m.Status == *c.Update.Status }) {
				errs[i] = nil
			}
		}
	}
	return errs
}

var _ store.MachineBatcher = (*hostedStore)(nil)

// GetRun implements store.Store.
func (s *hostedStore) GetRun(ctx context.Context, runID string) (store.Run, error) {
	var r store.Run
	_, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		r, err = st.GetRun(ctx, runID)
		return err
	})
	return r, err
}

// ListRuns implements store.Store.
func (s *hostedStore) ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	var runs []store.Run
	_, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		runs, err = st.ListRuns(ctx, f)
		return err
	})
	return runs, err
}

// LastRuns implements store.Store. A plugin built before LastRuns
// answers errors.ErrUnsupported, which is its answer, not its death: the
// caller asks job by job instead.
func (s *hostedStore) LastRuns(ctx context.Context, q store.LastRunsQuery) ([]store.RunSummary, error) {
	var rs []store.RunSummary
	_, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		rs, err = st.LastRuns(ctx, q)
		return err
	})
	return rs, err
}

// AppendOutput implements store.Store.
func (s *hostedStore) AppendOutput(ctx context.Context, runID, machine string, c store.Chunk) (int64, error) {
	var next int64
	_, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		next, err = st.AppendOutput(ctx, runID, machine, c)
		return err
	})
	return next, err
}

// AppendOutputBatch implements store.Batcher: one round trip and, in a
// store that can, one commit for the whole batch. A batch whose first
// failure is the plugin's death is retried whole on the restarted plugin:
// appends are idempotent, so the chunks it had stored come back as
// duplicates.
func (s *hostedStore) AppendOutputBatch(ctx context.Context, batch []store.Append) []store.AppendResult {
	var res []store.AppendResult
	_, err := s.callStore(ctx, func(st store.Store, _ int) error {
		res = store.AppendBatch(ctx, st, batch)
		for _, r := range res {
			if r.Err != nil {
				// The first failure decides whether the host retries.
				return r.Err
			}
		}
		return nil
	})
	if res == nil {
		res = make([]store.AppendResult, len(batch))
		for i := range res {
			res[i].Err = err
		}
	}
	return res
}

var _ store.Batcher = (*hostedStore)(nil)

// ReadOutput implements store.Store.
func (s *hostedStore) ReadOutput(ctx context.Context, q store.OutputQuery) (store.Output, error) {
	var out store.Output
	_, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		out, err = st.ReadOutput(ctx, q)
		return err
	})
	return out, err
}

// SetOverride implements store.Store.
func (s *hostedStore) SetOverride(ctx context.Context, o store.JobOverride) error {
	_, err := s.callStore(ctx, func(st store.Store, _ int) error { return st.SetOverride(ctx, o) })
	return err
}

// DeleteOverride implements store.Store.
func (s *hostedStore) DeleteOverride(ctx context.Context, job string) error {
	_, err := s.callStore(ctx, func(st store.Store, _ int) error { return st.DeleteOverride(ctx, job) })
	return err
}

// Overrides implements store.Store.
func (s *hostedStore) Overrides(ctx context.Context) ([]store.JobOverride, error) {
	var os []store.JobOverride
	_, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		os, err = st.Overrides(ctx)
		return err
	})
	return os, err
}

// SetMaintenance implements store.Store.
func (s *hostedStore) SetMaintenance(ctx context.Context, m store.Maintenance) error {
	_, err := s.callStore(ctx, func(st store.Store, _ int) error { return st.SetMaintenance(ctx, m) })
	return err
}

// GetMaintenance implements store.Store.
func (s *hostedStore) GetMaintenance(ctx context.Context) (store.Maintenance, error) {
	var m store.Maintenance
	_, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		m, err = st.GetMaintenance(ctx)
		return err
	})
	return m, err
}

// DeleteMaintenance implements store.Store.
func (s *hostedStore) DeleteMaintenance(ctx context.Context) error {
	_, err := s.callStore(ctx, func(st store.Store, _ int) error { return st.DeleteMaintenance(ctx) })
	return err
}

// FireRun implements store.Store. A retry after the plugin died that
// finds the slot recorded looks for the run: when it is this very run,
// the first try stored both (they go together) and the answer is true.
func (s *hostedStore) FireRun(ctx context.Context, run store.Run) (bool, error) {
	var ok bool
	_, err := s.callStore(ctx, func(st store.Store, attempt int) error {
		var err error
		ok, err = st.FireRun(ctx, run)
		if attempt > 1 && err == nil && !ok {
			if stored, gerr := st.GetRun(ctx, run.ID); gerr == nil && sameRun(stored, run) {
				s.m.log.Debug("FireRun retried after the plugin died met the run it had created", "run", run.ID)
				ok = true
			}
		}
		return err
	})
	return ok, err
}

// RecordFire implements store.Store. A retry after the plugin died that
// answers false is returned as false (see hostedStore): the first try may
// have recorded this very fire, but a skipped slot is safer than a doubled
// one.
func (s *hostedStore) RecordFire(ctx context.Context, job string, slot time.Time, runID string) (bool, error) {
	var ok bool
	retried, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		ok, err = st.RecordFire(ctx, job, slot, runID)
		return err
	})
	if retried && err == nil && !ok {
		s.m.log.Warn("RecordFire retried after the plugin died found the slot recorded; treating it as already fired",
			"job", job, "slot", slot, "run", runID)
	}
	return ok, err
}

// LastFire implements store.Store.
func (s *hostedStore) LastFire(ctx context.Context, job string) (time.Time, error) {
	var last time.Time
	_, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		last, err = st.LastFire(ctx, job)
		return err
	})
	return last, err
}

// LastFires implements store.Store; errors.ErrUnsupported from an older
// plugin as for LastRuns.
func (s *hostedStore) LastFires(ctx context.Context, jobs []string) (map[string]time.Time, error) {
	var last map[string]time.Time
	_, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		last, err = st.LastFires(ctx, jobs)
		return err
	})
	return last, err
}

// PruneRuns implements store.Store. A retry after the plugin died is
// safe (see hostedStore): pruning twice deletes nothing more, though the
// count then leaves out what the first try deleted.
func (s *hostedStore) PruneRuns(ctx context.Context, finishedBefore time.Time) (int, error) {
	var n int
	_, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		n, err = st.PruneRuns(ctx, finishedBefore)
		return err
	})
	return n, err
}

// EnqueueNotifications implements store.Store. A retry after the plugin
// died is safe (see hostedStore): ids already stored are left as they
// are.
func (s *hostedStore) EnqueueNotifications(ctx context.Context, ns []store.Notification) error {
	_, err := s.callStore(ctx, func(st store.Store, _ int) error { return st.EnqueueNotifications(ctx, ns) })
	return err
}

// ClaimNotifications implements store.Store. What a first try leased
// before the plugin died stays leased until its lease expires, and is
// claimed again then (see hostedStore).
func (s *hostedStore) ClaimNotifications(ctx context.Context, r store.ClaimRequest) ([]store.Notification, error) {
	var ns []store.Notification
	retried, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		ns, err = st.ClaimNotifications(ctx, r)
		return err
	})
	if retried {
		s.m.log.Warn("ClaimNotifications retried after the plugin died: what the first try leased waits for its lease to expire",
			"owner", r.Owner, "lease_ms", r.Lease.Milliseconds())
	}
	return ns, err
}

// FinishNotification implements store.Store. A retry after the plugin
// died that meets its own first try answers nil (see hostedStore).
func (s *hostedStore) FinishNotification(ctx context.Context, id, owner string, r store.NotificationResult) error {
	_, err := s.callStore(ctx, func(st store.Store, _ int) error { return st.FinishNotification(ctx, id, owner, r) })
	return err
}

// ListNotifications implements store.Store.
func (s *hostedStore) ListNotifications(ctx context.Context, f store.NotificationFilter) ([]store.Notification, error) {
	var ns []store.Notification
	_, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		ns, err = st.ListNotifications(ctx, f)
		return err
	})
	return ns, err
}

// auditLookBack is how many of the newest entries of an entry's token,
// action and job a retried AppendAudit looks through for its first try.
const auditLookBack = 20

// AppendAudit implements store.Store. A retry after the plugin died first
// looks for the entry the first try may have stored (see hostedStore), so
// that one action is not recorded twice.
func (s *hostedStore) AppendAudit(ctx context.Context, e store.AuditEntry) (int64, error) {
	var id int64
	_, err := s.callStore(ctx, func(st store.Store, attempt int) error {
		if attempt > 1 {
			stored, err := st.ListAudit(ctx, store.AuditFilter{By: e.By, Action: e.Action, Job: e.Job, Limit: auditLookBack})
			if err != nil {
				return err
			}
			for _, got := range stored {
				if sameAudit(got, e) {
					s.m.log.Debug("AppendAudit retried after the plugin died met the entry it had stored", "id", got.ID)
					id = got.ID
					return nil
				}
			}
		}
		var err error
		id, err = st.AppendAudit(ctx, e)
		return err
	})
	return id, err
}

// sameAudit tells whether stored is e as a store keeps it: every field
// but the id, and the same instant to the microsecond (a store may keep
// no finer).
func sameAudit(stored, e store.AuditEntry) bool {
	d := stored.At.Sub(e.At)
	stored.ID, stored.At, e.ID, e.At = 0, time.Time{}, 0, time.Time{}
	return stored == e && d > -time.Microsecond && d < time.Microsecond
}

// ListAudit implements store.Store.
func (s *hostedStore) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	var es []store.AuditEntry
	_, err := s.callStore(ctx, func(st store.Store, _ int) error {
		var err error
		es, err = st.ListAudit(ctx, f)
		return err
	})
	return es, err
}

// Ping implements store.Store. A dead plugin is started again, so Ping
// fails only when the store cannot be reached even then.
func (s *hostedStore) Ping(ctx context.Context) error {
	_, err := s.callStore(ctx, func(st store.Store, _ int) error { return st.Ping(ctx) })
	return err
}

// Close closes the store in the running plugin, so that it flushes and
// lets go of its files; it starts no plugin to do so, and the process
// itself stops with Host.Close.
func (s *hostedStore) Close() error {
	inst := s.m.running()
	if inst == nil {
		return nil
	}
	return inst.impl.(store.Store).Close()
}
