package store

import (
	"cmp"
	"slices"
	"strings"
)

// LastRunsQuery selects what LastRuns answers.
type LastRunsQuery struct {
	// Jobs names the jobs to answer for; empty: every job with a run. A
	// name given twice is answered once.
	Jobs []string
	// Machines is how many of each run's machines to return, the first by
	// machine name (byte order); 0 (or below): none. Every machine is
	// counted in RunSummary.MachineCounts whatever it is.
	Machines int
}

// RunSummary is a job's latest run as LastRuns answers it.
type RunSummary struct {
	// Run is the run as ListRuns returns it (actions and spec included),
	// but for Machines, which holds at most LastRunsQuery.Machines of its
	// machines, the first by name; none may be nil or empty.
	Run Run
	// MachineCounts counts all the run's machines by status; never nil
	// (empty for a run without machines).
	MachineCounts map[string]int
}

// SummarizeRun returns run as LastRuns answers it, keeping at most
// machines of its machines (the first by name) and counting them all by
// status. A store that loads whole runs uses it, and so does a caller
// falling back to ListRuns on a store that has no LastRuns
// (errors.ErrUnsupported), so that both answer alike. run is not changed.
func SummarizeRun(run Run, machines int) RunSummary {
	counts := make(map[string]int)
	for _, m := range run.Machines {
		counts[m.Status]++
	}
	keep := []Machine{}
	if machines > 0 && len(run.Machines) > 0 {
		sorted := slices.Clone(run.Machines)
		slices.SortFunc(sorted, func(a, b Machine) int { return strings.Compare(a.Machine, b.Machine) })
		keep = sorted[:min(machines, len(sorted))]
	}
	run.Machines = keep
	return RunSummary{Run: run, MachineCounts: counts}
}

// SortRunSummaries puts a LastRuns answer in the order every store gives
// it: by job name (byte order).
func SortRunSummaries(rs []RunSummary) {
	slices.SortFunc(rs, func(a, b RunSummary) int { return cmp.Compare(a.Run.Job, b.Run.Job) })
}
