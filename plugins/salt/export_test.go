package salt

import "time"

// SetClock makes tgt judge its token's expiry by now; call it before
// Configure.
func SetClock(tgt *Target, now func() time.Time) { tgt.now = now }
