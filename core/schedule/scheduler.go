package schedule

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Firing is one slot of one job, sent when the slot comes due.
type Firing struct {
	Job  string
	Slot time.Time // in the job's location
}

// Entry is one job as the Scheduler sees it.
type Entry struct {
	Name     string
	Schedule Schedule // nil: never fires
	// Location is where Next is asked from (nil: UTC); a schedule from
	// WithDST reads its fields in its own zone, the job's.
	Location *time.Location
	Enabled  bool
}

// JobState is what the Scheduler knows of one job, for the API.
type JobState struct {
	// Next is the slot the job fires next; zero when disabled, @manually,
	// or when the schedule has no further slot.
	Next time.Time
	// Last is the last slot fired since this process started (zero: none).
	Last    time.Time
	Enabled bool
	// Skipped counts slots dropped because they were more than MaxLate
	// overdue (a stalled receiver or a forward jump of the clock); after a
	// long jump over a fine-grained schedule it is a lower bound.
	Skipped int
}

// DefaultMaxLate is Config.MaxLate's default.
const DefaultMaxLate = 5 * time.Minute

// maxWait bounds one timer. Go timers run on the monotonic clock, which a
// step of the wall clock (NTP, a resumed VM) does not move, while slots are
// wall-clock instants: a timer set for a slot an hour away still waits an
// hour after the wall clock jumped forward past it. Waking every second and
// reading the wall clock again bounds the lateness such a jump causes to a
// second; after a step back, the loop simply finds nothing due yet. A wake
// costs a clock read and a heap peek, whatever the number of jobs.
const maxWait = time.Second

// Config configures a Scheduler.
type Config struct {
	// Logger defaults to a null logger.
	Logger hclog.Logger
	// Firings receives the firings; the receiver is the runner. The
	// Scheduler blocks on the send rather than dropping a firing, and stays
	// responsive to Set and to cancellation while blocked.
	Firings chan<- Firing
	// Clock defaults to RealClock().
	Clock Clock
	// MaxLate is how late a slot may still be fired. A stalled receiver or
	// a clock that jumps forward leaves slots overdue; those within MaxLate
	// are fired late, in order, each once, and older ones are skipped and
	// counted in JobState.Skipped, so that a suspended host does not wake
	// to thousands of firings. Catching up across core restarts is the
	// job's catch_up policy, not this. 0 means DefaultMaxLate.
	MaxLate time.Duration
}

// Scheduler fires each enabled job at each of its slots, at most once per
// slot. One goroutine (Run) owns all job state; Set reaches it through a
// mailbox and a wake channel, and the read methods through an atomically
// swapped snapshot, so that the API never shares a locked map with the
// loop. The snapshot's map is replaced only when the job set changes; each
// job's entry is an atomic cell the loop updates as it fires, so a firing
// costs O(log jobs), not a copy of every job.
type Scheduler struct {
	log     hclog.Logger
	out     chan<- Firing
	clock   Clock
	maxLate time.Duration

	// wake, of capacity 1, holds a token exactly while a Set is pending:
	// Set puts it and applyPending takes it, both under mu, so that a
	// Set applied before the loop waited (one made before Run, say) does
	// not wake the loop once more, later, for nothing.
	wake chan struct{}

	mu         sync.Mutex // guards the fields below: the mailbox between Set and Run
	running    bool
	pending    []Entry
	hasPending bool
	waiters    []chan struct{}

	snap atomic.Pointer[map[string]*stateCell]

	// Owned by the Run goroutine.
	jobs  map[string]*job
	queue jobHeap

	// blocked, when set by a test, is called as the loop starts waiting
	// for the receiver.
	blocked func(Firing)
}

type stateCell struct{ v atomic.Pointer[JobState] }

type job struct {
	name    string
	sched   Schedule
	loc     *time.Location
	key     string // schedule and zone: equal keys mean an unchanged schedule
	enabled bool
	last    time.Time
	next    time.Time
	skipped int
	index   int // in queue; -1 when not queued
	cell    *stateCell
}

// NewScheduler returns a Scheduler with no jobs; call Set and Run.
func NewScheduler(cfg Config) *Scheduler {
	s := &Scheduler{
		log:     cfg.Logger,
		out:     cfg.Firings,
		clock:   cfg.Clock,
		maxLate: cfg.MaxLate,
		wake:    make(chan struct{}, 1),
		jobs:    map[string]*job{},
	}
	if s.clock == nil {
		s.clock = RealClock()
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.maxLate <= 0 {
		s.maxLate = DefaultMaxLate
	}
	empty := map[string]*stateCell{}
	s.snap.Store(&empty)
	return s
}

// Set replaces the whole job set (a reload, or an enable/disable from the
// API). A job whose schedule (expression, and the zone and daylight-saving
// policies WithDST bound to it) and location did not change keeps its next
// and last slots; a changed, new or re-enabled job starts at its first slot
// strictly after now, so slots missed while it was disabled never fire.
// A job's last fired slot is remembered under its name even across
// schedule changes and disabling, and slots are only ever computed after
// it, so no slot fires twice even if the clock steps back. Names must be
// unique; of duplicates the last wins.
//
// While Run is running, Set returns once the loop has applied the set, so
// NextRun reflects it; otherwise the set is kept for Run to apply first.
func (s *Scheduler) Set(entries []Entry) {
	cp := append([]Entry(nil), entries...)
	var done chan struct{}
	s.mu.Lock()
	s.pending, s.hasPending = cp, true
	if s.running {
		done = make(chan struct{})
		s.waiters = append(s.waiters, done)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}

// NextRun returns the job's next slot; zero when the job is unknown,
// disabled, @manually or has no further slot.
func (s *Scheduler) NextRun(name string) time.Time {
	st, _ := s.State(name)
	return st.Next
}

// State returns what the Scheduler knows of the job, and false when it has
// no job of that name.
func (s *Scheduler) State(name string) (JobState, bool) {
	c, ok := (*s.snap.Load())[name]
	if !ok {
		return JobState{}, false
	}
	return *c.v.Load(), true
}

// Run fires slots until ctx is done, then returns ctx.Err(). Only one Run
// may be active at a time; job state survives from one Run to the next.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.out == nil {
		return errors.New("schedule: Config.Firings is nil")
	}
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("schedule: Run is already running")
	}
	s.running = true
	s.mu.Unlock()
	defer s.stopped()

	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.applyPending()
		now := s.now()
		top := s.queue.peek()
		if top != nil && !top.next.After(now) {
			if top.next.Before(now.Add(-s.maxLate)) {
				s.skipOverdue(top, now)
				continue
			}
			f := Firing{Job: top.name, Slot: top.next}
			select {
			case s.out <- f:
			default:
				// The receiver is busy: wait for it, a Set or the end.
				if s.blocked != nil {
					s.blocked(f)
				}
				select {
				case s.out <- f:
				case <-s.wake:
					// The set may have disabled or changed this job, so
					// the firing is decided again from the new state.
					continue
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			s.fired(top)
			continue
		}

		var timer Timer
		var timerC <-chan time.Time
		if top != nil {
			d := top.next.Sub(now)
			if d > maxWait {
				d = maxWait
			}
			timer = s.clock.NewTimer(d)
			timerC = timer.C()
		}
		select {
		case <-timerC:
		case <-s.wake:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// now drops the monotonic reading: slots are wall-clock instants and must
// compare as such.
func (s *Scheduler) now() time.Time { return s.clock.Now().Round(0) }

func (s *Scheduler) stopped() {
	s.mu.Lock()
	s.running = false
	// A Set that raced with the end keeps its entries for the next Run;
	// its caller must not wait for a loop that is gone.
	for _, w := range s.waiters {
		close(w)
	}
	s.waiters = nil
	s.mu.Unlock()
}

func (s *Scheduler) applyPending() {
	s.mu.Lock()
	entries, ok, waiters := s.pending, s.hasPending, s.waiters
	s.pending, s.hasPending, s.waiters = nil, false, nil
	select {
	case <-s.wake:
	default:
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	s.apply(entries, s.now())
	for _, w := range waiters {
		close(w)
	}
}

func (s *Scheduler) apply(entries []Entry, now time.Time) {
	jobs := make(map[string]*job, len(entries))
	for _, e := range entries {
		loc := e.Location
		if loc == nil {
			loc = time.UTC
		}
		key := ""
		if e.Schedule != nil {
			key = scheduleKey(e.Schedule, loc)
		}
		j := &job{name: e.Name, sched: e.Schedule, loc: loc, key: key, enabled: e.Enabled, index: -1}
		old := s.jobs[e.Name]
		if old != nil {
			j.last, j.skipped = old.last, old.skipped
		}
		switch {
		case !e.Enabled || e.Schedule == nil:
		case old != nil && old.enabled && old.key == key:
			j.next = old.next
		default:
			j.next = j.slotAfter(laterOf(now, j.last))
		}
		jobs[e.Name] = j
	}
	// Names no longer configured are forgotten, last slot included: a job
	// removed and added back later is a new job.
	s.jobs = jobs
	cells := make(map[string]*stateCell, len(jobs))
	for name, j := range jobs {
		j.cell = &stateCell{}
		j.publish()
		cells[name] = j.cell
	}
	s.snap.Store(&cells)
	s.queue = s.queue[:0]
	for _, j := range jobs {
		if !j.next.IsZero() {
			j.index = len(s.queue)
			s.queue = append(s.queue, j)
		}
	}
	heap.Init(&s.queue)
}

// fired records that j's due slot was sent and queues its next one.
func (s *Scheduler) fired(j *job) {
	j.last = j.next
	j.next = j.slotAfter(j.last)
	s.requeue(j)
}

// skipOverdue drops j's slots older than MaxLate without firing them.
func (s *Scheduler) skipOverdue(j *job, now time.Time) {
	limit := now.Add(-s.maxLate)
	first, before := j.next, j.skipped
	for n := 0; !j.next.IsZero() && j.next.Before(limit); n++ {
		j.skipped++
		if n == 64 {
			// Counting slot by slot is cheap for a short stall but not
			// after a long jump over a fine-grained schedule.
			j.next = j.slotAfter(limit)
			break
		}
		j.next = j.slotAfter(j.next)
	}
	s.log.Warn("slots skipped: overdue by more than max_late", "job", j.name,
		"first_slot", first, "skipped", j.skipped-before, "max_late_ms", s.maxLate.Milliseconds())
	s.requeue(j)
}

func (s *Scheduler) requeue(j *job) {
	if j.next.IsZero() {
		heap.Remove(&s.queue, j.index)
		j.index = -1
	} else {
		heap.Fix(&s.queue, j.index)
	}
	j.publish()
}

func (j *job) publish() {
	j.cell.v.Store(&JobState{Next: j.next, Last: j.last, Enabled: j.enabled, Skipped: j.skipped})
}

// slotAfter is the first slot strictly after t, computed in the job's
// location.
func (j *job) slotAfter(t time.Time) time.Time {
	if j.sched == nil || j.sched.Manual() {
		return time.Time{}
	}
	return j.sched.Next(t.In(j.loc))
}

// scheduleKey is what decides a job's slots: its expression, the entry's
// zone and, for a schedule from WithDST, the zone and policies bound to it,
// so that a reload that changes only dst_gap is a changed schedule.
func scheduleKey(s Schedule, loc *time.Location) string {
	k := s.String() + "\x00" + loc.String()
	if p, ok := s.(interface{ policyKey() string }); ok {
		k += "\x00" + p.policyKey()
	}
	return k
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// jobHeap orders queued jobs by next slot, then name, so that firings due
// at the same instant go out in a stable order.
type jobHeap []*job

func (h jobHeap) Len() int { return len(h) }
func (h jobHeap) Less(a, b int) bool {
	if !h[a].next.Equal(h[b].next) {
		return h[a].next.Before(h[b].next)
	}
	return h[a].name < h[b].name
}
func (h jobHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].index = a
	h[b].index = b
}
func (h *jobHeap) Push(x any) {
	j := x.(*job)
	j.index = len(*h)
	*h = append(*h, j)
}
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	j.index = -1
	return j
}
func (h jobHeap) peek() *job {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}
