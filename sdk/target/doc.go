// Package target is the target plugin kind: the Target interface a plugin
// implements, and the go-plugin adapter that carries it over gRPC.
package target
