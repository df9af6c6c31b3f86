package notify

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// maxMachines bounds the machines an event lists: a run on ten thousand
// machines must not make a ten-thousand-line message.
const maxMachines = 20

// specific is the event kind of a run status that has one of its own; the
// other failed statuses are only "failure".
var specific = map[string]notifier.EventKind{
	store.StatusTimeout:    notifier.EventTimeout,
	store.StatusKilled:     notifier.EventKilled,
	store.StatusLost:       notifier.EventLost,
	store.StatusNotStarted: notifier.EventNotStarted,
}

// ForRun returns the outbox entries for a run that just ended with its
// final status, under the job's notify blocks. prev is the status of the
// job's run that ended before it ("" for none): a success after anything
// but a success is also "recovered". A block that lists the status's own
// kind (timeout, killed, lost, not_started) gets that; one that lists
// only "failure" gets a failure for every run that did not succeed. A
// skipped run (every machine under maintenance) did not run: it is
// missed, for the blocks that list that.
func ForRun(job *config.Job, run store.Run, prev, coreURL string, now time.Time) ([]store.Notification, error) {
	if job == nil || len(job.Notify) == 0 || !store.Final(run.Status) {
		return nil, nil
	}
	var out []store.Notification
	for _, nb := range job.Notify {
		var kinds []notifier.EventKind
		if run.Status == store.StatusSkipped {
			if wants(nb, notifier.EventMissed) {
				kinds = append(kinds, notifier.EventMissed)
			}
		} else if run.Status == store.StatusSucceeded {
			if wants(nb, notifier.EventSuccess) {
				kinds = append(kinds, notifier.EventSuccess)
			}
			if prev != "" && prev != store.StatusSucceeded && wants(nb, notifier.EventRecovered) {
				kinds = append(kinds, notifier.EventRecovered)
			}
		} else if k, ok := specific[run.Status]; ok && wants(nb, k) {
			kinds = append(kinds, k)
		} else if wants(nb, notifier.EventFailure) {
			kinds = append(kinds, notifier.EventFailure)
		}
		for _, k := range kinds {
			n, err := entry(job, nb.Notifier, run.ID+"/"+nb.Notifier+"/"+string(k), runEvent(job, run, k, prev, coreURL, now), now)
			if err != nil {
				return nil, err
			}
			out = append(out, n)
		}
	}
	return out, nil
}

// ForSoftTimeout returns the entries for a run still going past its
// job's soft_timeout.
func ForSoftTimeout(job *config.Job, run store.Run, coreURL string, now time.Time) ([]store.Notification, error) {
	var out []store.Notification
	for _, nb := range job.Notify {
		if !wants(nb, notifier.EventSoftTimeout) {
			continue
		}
		ev := runEvent(job, run, notifier.EventSoftTimeout, "", coreURL, now)
		ev.Message = fmt.Sprintf("%s is still running after its soft timeout of %s (run %s, started %s)",
			job.Name, job.SoftTimeout, run.ID, run.StartedAt.UTC().Format(time.RFC3339))
		n, err := entry(job, nb.Notifier, run.ID+"/"+nb.Notifier+"/"+string(notifier.EventSoftTimeout), ev, now)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// ForMissed returns the entries for something that did not happen: a
// slot that passed without a run (key names it, such as "slot/<unix>"),
// or a dead-man check (key "gap/<unix of the last success>"). The key
// makes the id, so each one is notified once.
func ForMissed(job *config.Job, key string, at time.Time, message, coreURL string, now time.Time) ([]store.Notification, error) {
	var out []store.Notification
	for _, nb := range job.Notify {
		if !wants(nb, notifier.EventMissed) {
			continue
		}
		ev := notifier.Event{Kind: notifier.EventMissed, Job: job.Name, Group: job.Group, ScheduledFor: at.UTC(),
			Message: message, Core: coreURL, At: now.UTC()}
		n, err := entry(job, nb.Notifier, job.Name+"/"+nb.Notifier+"/missed/"+key, ev, now)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func wants(nb config.Notify, k notifier.EventKind) bool {
	return slices.Contains(nb.On, string(k))
}

// entry makes the outbox entry of ev for one notifier; its id is the
// event's.
func entry(job *config.Job, notifierName, id string, ev notifier.Event, now time.Time) (store.Notification, error) {
	ev.ID = id
	b, err := json.Marshal(ev)
	if err != nil {
		return store.Notification{}, fmt.Errorf("encode the %s event of %s for %s: %w", ev.Kind, job.Name, notifierName, err)
	}
	return store.Notification{ID: id, Notifier: notifierName, Job: job.Name, RunID: ev.RunID, Kind: string(ev.Kind),
		Event: b, CreatedAt: now.UTC(), DueAt: now.UTC()}, nil
}

// runEvent describes a run for kind k.
func runEvent(job *config.Job, run store.Run, k notifier.EventKind, prev, coreURL string, now time.Time) notifier.Event {
	ev := notifier.Event{Kind: k, Job: job.Name, Group: job.Group, RunID: run.ID, Status: run.Status, Trigger: run.Trigger,
		ScheduledFor: run.ScheduledFor.UTC(), StartedAt: run.StartedAt.UTC(), FinishedAt: run.FinishedAt.UTC(),
		Core: coreURL, At: now.UTC(), Counts: map[string]int{}}
	ms := slices.Clone(run.Machines)
	// Failing machines first, then by name: what a reader looks for.
	slices.SortStableFunc(ms, func(a, b store.Machine) int {
		af, bf := a.Status != store.StatusSucceeded && a.Status != store.StatusSkipped, b.Status != store.StatusSucceeded && b.Status != store.StatusSkipped
		switch {
		case af && !bf:
			return -1
		case bf && !af:
			return 1
		}
		return strings.Compare(a.Machine, b.Machine)
	})
	var failing []string
	for _, m := range ms {
		ev.Counts[m.Status]++
		bad := m.Status != store.StatusSucceeded && m.Status != store.StatusSkipped
		if bad && len(failing) < 3 {
			failing = append(failing, m.Machine+": "+machineWhy(m))
		}
		if len(ev.Machines) == maxMachines {
			ev.MachinesOmitted++
			continue
		}
		ev.Machines = append(ev.Machines, notifier.MachineResult{Machine: m.Machine, Status: m.Status, ExitCode: m.ExitCode, Reason: m.Reason})
	}
	ran := len(ms) - ev.Counts[store.StatusSkipped]
	switch {
	case run.Status == store.StatusSkipped:
		ev.Message = fmt.Sprintf("%s did not run: every one of its %s is under maintenance", job.Name, machines(len(ms)))
	case run.Status == store.StatusSucceeded && k == notifier.EventRecovered:
		ev.Message = fmt.Sprintf("%s recovered: succeeded on %s after a run that was %s", job.Name, machines(ran), prev)
	case run.Status == store.StatusSucceeded:
		ev.Message = fmt.Sprintf("%s succeeded on %s", job.Name, machines(ran))
	case run.Status == store.StatusRunning:
		ev.Message = fmt.Sprintf("%s is running", job.Name)
	case len(failing) > 0:
		bad := ran - ev.Counts[store.StatusSucceeded]
		more := ""
		if bad > len(failing) {
			more = ", ..."
		}
		ev.Message = fmt.Sprintf("%s %s on %d of %s (%s%s)", job.Name, verb(run.Status), bad, machines(ran), strings.Join(failing, ", "), more)
	default:
		why := run.Reason
		if why == "" {
			why = run.Status
		}
		ev.Message = fmt.Sprintf("%s %s: %s", job.Name, verb(run.Status), why)
	}
	return ev
}

func machines(n int) string {
	if n == 1 {
		return "1 machine"
	}
	return fmt.Sprintf("%d machines", n)
}

// verb is how a message says a run ended.
func verb(status string) string {
	switch status {
	case store.StatusTimeout:
		return "timed out"
	case store.StatusNotStarted:
		return "did not start"
	case store.StatusError:
		return "failed (error)"
	}
	return status
}

// machineWhy is a machine's outcome in a few words: its exit code, or
// its status and reason.
func machineWhy(m store.Machine) string {
	switch {
	case m.Status == store.StatusFailed && m.ExitCode != nil:
		return fmt.Sprintf("exit %d", *m.ExitCode)
	case m.Reason != "" && m.Reason != m.Status:
		return m.Status + " (" + m.Reason + ")"
	}
	return m.Status
}
