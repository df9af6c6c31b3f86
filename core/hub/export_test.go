package hub

// SetFrameQueued lets a test await frames queued behind a busy store.
func SetFrameQueued(f func()) { frameQueued = f }

// SetDrainStarted lets a test await the start of a graceful stop.
func SetDrainStarted(f func()) { drainStarted = f }
