package salt

import "sync"

// maxRemembered bounds how many targets' silent minions are remembered:
// one entry per job and target, the latest Resolve's.
const maxRemembered = 1024

// silentSet remembers, per job and target, the minions that matched but
// did not answer test.ping in the latest Resolve, and why; Dispatch to one
// of them fails at once. Resolve and Dispatch are separate calls with
// nothing but the job and its target block in common, hence the key.
type silentSet struct {
	mu    sync.Mutex
	max   int
	seq   uint64
	byKey map[string]silentEntry
}

type silentEntry struct {
	seq     uint64
	reasons map[string]string // minion → why it is taken as unreachable
}

func newSilentSet(max int) *silentSet {
	return &silentSet{max: max, byKey: map[string]silentEntry{}}
}

// remember replaces what is known of key; no reasons forgets it.
func (s *silentSet) remember(key string, reasons map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(reasons) == 0 {
		delete(s.byKey, key)
		return
	}
	s.seq++
	s.byKey[key] = silentEntry{seq: s.seq, reasons: reasons}
	if len(s.byKey) <= s.max {
		return
	}
	// Drop the least recently resolved; a scan is cheap at this size and
	// happens only once the set is full.
	oldest, oldestSeq := "", s.seq
	for k, e := range s.byKey {
		if e.seq < oldestSeq {
			oldest, oldestSeq = k, e.seq
		}
	}
	delete(s.byKey, oldest)
}

// reason says why minion is taken as unreachable for key, if it is.
func (s *silentSet) reason(key, minion string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	why, ok := s.byKey[key].reasons[minion]
	return why, ok
}

// len is the number of targets remembered.
func (s *silentSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byKey)
}
