package wrapper

// Version is the wrapper's version, sent in connect and start. Release
// builds set it with -ldflags "-X github.com/saltpeter/saltpeter/wrapper.Version=...".
var Version = "dev"
