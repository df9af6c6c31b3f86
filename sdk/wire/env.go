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
