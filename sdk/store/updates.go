package store

import (
	"context"
	"sync"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// UpdateMachine is the store's busiest call after output: a run costs
// about five (dispatched, connected, started, heartbeat, completed) and an
// idle fleet's heartbeats a steady stream, each a round trip and, in the
// plugin, a write of its own. So the client queues them as it queues
// output (append.go), in a combiner (combine.go): while a call is in
// flight, the calls that arrive go together in the next, one
// UpdateMachines call. The plugin applies a batch's items side by side
// (each machine's in order), so that a store that group-commits
// concurrent writes can merge them, as far as they reach it while its
// previous transaction runs (on a box with few CPUs, not far: a
// MachineBatcher does better).

// maxConcurrentUpdates bounds how many machines' updates of one batch a
// plugin applies at once (and the client sends at once when it falls back
// to UpdateMachine): room for a store's group commit to merge them, and
// above the connection pool of a server database. Fires use it too.
const maxConcurrentUpdates = 64

// updater is a GRPCClient's queue of UpdateMachine calls.
type updater = combiner[*storepb.UpdateMachineRequest, struct{}]

func newUpdater(client storepb.StoreClient) *updater {
	return &updater{
		one: func(ctx context.Context, item *storepb.UpdateMachineRequest) (struct{}, error) {
			_, err := client.UpdateMachine(ctx, item)
			return struct{}{}, fromStatus(err)
		},
		many: func(ctx context.Context, items []*storepb.UpdateMachineRequest) ([]outcome[struct{}], error) {
			resp, err := client.UpdateMachines(ctx, &storepb.UpdateMachinesRequest{Items: items})
			if err != nil {
				return nil, err
			}
			return errOutcomes(resp.GetResults()), nil
		},
		key: func(item *storepb.UpdateMachineRequest) machineKey {
			return machineKey{item.GetRunId(), item.GetMachine()}
		},
		what: "machine updates",
	}
}

// machineKey names one machine of one run.
type machineKey struct{ run, machine string }

// sideBySide makes n calls as inOrderByKey runs them, at most
// maxConcurrentUpdates at once, and returns their answers in order: what
// a batch comes to for a store or a plugin that cannot take it whole.
func sideBySide[R any](n int, key func(i int) machineKey, call func(i int) R) []R {
	out := make([]R, n)
	inOrderByKey(n, maxConcurrentUpdates, key, func(i int) { out[i] = call(i) })
	return out
}

// inOrderByKey runs apply(i) for every i below n: the items of one key one
// after another, in their order, and different keys side by side, at most
// limit at once. It returns once every item has run.
func inOrderByKey(n, limit int, key func(i int) machineKey, apply func(i int)) {
	if n == 1 {
		apply(0)
		return
	}
	// next[i] is the item of i's key that follows i, -1 for none; heads
	// are each key's first item.
	next := make([]int, n)
	last := make(map[machineKey]int, n)
	var heads []int
	for i := range n {
		next[i] = -1
		k := key(i)
		if j, ok := last[k]; ok {
			next[j] = i
		} else {
			heads = append(heads, i)
		}
		last[k] = i
	}
	chain := func(h int) {
		for i := h; i >= 0; i = next[i] {
			apply(i)
		}
	}
	if len(heads) == 1 {
		chain(heads[0])
		return
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for _, h := range heads {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			chain(h)
		})
	}
	wg.Wait()
}
