package hub

// SetFrameQueued lets a test await frames queued behind a busy store.
func SetFrameQueued(f func()) { frameQueued = f }
