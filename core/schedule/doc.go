// Package schedule owns when jobs fire: parsing schedule expressions (cron
// with 5 or 6 fields, descriptors, "@every D" anchored to the Unix epoch,
// "@manually") and the Scheduler, one goroutine that sends a Firing for each
// slot of each enabled job, each slot at most once.
//
// Slots are computed in each job's own time zone. Daylight-saving handling
// is robfig/cron's for now (see NextN); the dst_gap and dst_repeat policies
// of the configuration are not applied here yet.
package schedule
