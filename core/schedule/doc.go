// Package schedule owns when jobs fire: parsing schedule expressions (cron
// with 5 or 6 fields, descriptors, "@every D" anchored to the Unix epoch,
// "@manually"), the daylight-saving policies of fixed-hour schedules
// (WithDST: dst_gap shift or skip, dst_repeat once or twice), the listing
// of upcoming slots (NextN), and the Scheduler, one goroutine that sends a
// Firing for each slot of each enabled job, each slot at most once.
//
// Slots are computed in each job's own time zone. robfig/cron only matches
// fields against wall-clock readings; which instants a reading comes to on
// the day of a transition is decided here (dst.go), so the Scheduler,
// catch-up and NextN all see the same slots, and a slot is the same
// instant across restarts.
//
// The Scheduler compares slots with the wall clock, which may step (NTP, a
// resumed VM) while Go timers follow the monotonic clock; it reads the wall
// clock again at least every second. On Linux the real clock's timers
// are timerfds, which wake an idle core to the microsecond where Go's
// timers wake it to the millisecond (timerfd_linux.go).
package schedule
