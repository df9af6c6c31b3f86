// Package grpcbuf owns the memory gRPC works in on both ends of a
// plugin's connection: Pool, the buffers gRPC reads frames and marshals
// messages into, and Codec, the proto codec that lets a message encode
// itself into buffers that alias its bytes, and decode itself from gRPC's
// own buffers (a store's output batches go from the core's read buffers
// to the plugin's without being copied into messages on the way).
//
// It is internal to the SDK: importing it registers Codec in proto's
// place, the sdk package makes Pool gRPC's, and a kind's package
// implements Encoder and Decoder for its hot messages.
package grpcbuf
