package wire

// The dispatch environment a target plugin gives the wrapper program.
const (
	EnvWebSocketURL  = "SP_WEBSOCKET_URL"
	EnvWebSocketURLs = "SP_WEBSOCKET_URLS"
	EnvCAFile        = "SP_CA_FILE"
	EnvJobName       = "SP_JOB_NAME"
	EnvJobInstance   = "SP_JOB_INSTANCE"
	EnvMachineID     = "SP_MACHINE_ID"
	EnvToken         = "SP_TOKEN"

	// Only for protocol = 1 wrappers, which read the job from here.
	EnvCommand = "SP_COMMAND"
	EnvCwd     = "SP_CWD"
	EnvUser    = "SP_USER"
	EnvTimeout = "SP_TIMEOUT"
)

// DetachedLine is the prefix of the one line a wrapper prints on its
// standard output once it has detached from the process that started it.
// A target reads it to know at once that the wrapper started.
const DetachedLine = "saltpeter-wrapper: detached"

// EnvDetachedByTarget, set to "1" by the target that starts a protocol 2
// wrapper, says that the target did what the wrapper's own detaching
// would: the wrapper leads a session of its own, has no descriptor beyond
// 0-2, and the target reaps it whenever it exits rather than wait for it.
// The wrapper then runs the job itself instead of re-executing itself to
// detach, which saves a program start per dispatch. A wrapper heeds it
// only when it does lead its session, and never passes it to the job; a
// wrapper that does not know it detaches itself as before.
const EnvDetachedByTarget = "SP_WRAPPER_DETACHED_BY_TARGET"

// EnvNarrowedByTarget, set to "1" by a target that starts the wrapper with
// GOMAXPROCS=1 in its environment, says that the target chose it, not the
// operator: the wrapper then starts on one P without resizing the
// runtime (which costs a stop of the world and the second P's caches),
// drops both variables from its environment at once, so that its job
// never sees them, and takes every P back when the job's output is
// chatty, as it does when it narrows itself. Only for a wrapper of the
// target's own build: one that does not know the variable would hand
// GOMAXPROCS=1 to its job.
const EnvNarrowedByTarget = "SP_WRAPPER_NARROWED_BY_TARGET"
