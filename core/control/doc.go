// Package control owns the contract between the operator surfaces (HTTP
// API, events socket, CLI) and the part of the core that acts (the
// runner): the requests they make, the view of jobs they read, and the
// errors they must tell apart.
package control
