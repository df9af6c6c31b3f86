// Package grpcbuf owns the memory gRPC works in on both ends of a
// plugin's connection: Pool, the buffers gRPC reads frames and marshals
// messages into, and Codec, the proto codec that lets a message decode
// itself from gRPC's own buffers (a store's output batches keep their
// bytes where they arrived rather than copied once more into fresh
// allocations).
//
// It is internal to the SDK: importing it registers Codec in proto's
// place, the sdk package makes Pool gRPC's, and a kind's server package
// implements Decoder for its hot messages.
package grpcbuf
