package sdk

import (
	"github.com/hashicorp/go-plugin"

	"github.com/saltpeter/saltpeter/sdk/target"
)

// Handshake is the go-plugin handshake between the core and a plugin.
// ProtocolVersion is the plugin protocol's major version: it changes only
// when a change breaks existing plugins. The magic cookie only tells a
// plugin binary run by hand that it is not meant to be; it is no secret.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "SALTPETER_PLUGIN",
	MagicCookieValue: "e173ce518f011e0b58382ce611edf0f3d7153d34725e5322",
}

// Plugin kinds. A plugin binary may serve several kinds at once; the core
// asks for each by this name.
const (
	// KindTarget resolves target blocks to machines and starts the
	// wrapper on them (package sdk/target).
	KindTarget = target.Kind
	// KindStore and KindNotifier are reserved for the store and notifier
	// kinds to come.
	KindStore    = "store"
	KindNotifier = "notifier"
)

// EnvLogLevel names the environment variable through which the core tells
// a plugin the log level it wants ("trace", "debug", "info", "warn",
// "error"). WithLogLevel overrides it.
const EnvLogLevel = "SALTPETER_PLUGIN_LOG_LEVEL"
