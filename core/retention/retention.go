package retention

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Pruner is what retention needs of the store.
type Pruner interface {
	PruneRuns(ctx context.Context, finishedBefore time.Time) (int, error)
}

// Interval is how often Run prunes for a retention of keep: a tenth of
// it, between a minute and an hour, so that history never outlives its
// retention by much and a short retention (tests) is honoured promptly.
func Interval(keep time.Duration) time.Duration {
	return min(max(keep/10, time.Minute), time.Hour)
}

// Run prunes runs finished more than keep ago, at once and then every
// interval, until ctx ends. A failed prune is logged and tried again at
// the next interval.
func Run(ctx context.Context, log hclog.Logger, st Pruner, keep, interval time.Duration, now func() time.Time) {
	if keep <= 0 {
		return
	}
	if now == nil {
		now = time.Now
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		before := now().Add(-keep)
		n, err := st.PruneRuns(ctx, before)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("pruning old runs failed, will try again", "error", err, "retention", keep.String())
		case n > 0:
			log.Info("pruned old runs", "runs", n, "finished_before", before)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
