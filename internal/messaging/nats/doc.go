// Package nats parses the NATS client protocol
// (https://docs.nats.io/reference/reference-protocols/nats-protocol) as it
// flows over one TCP connection, in either direction: client → server
// (CONNECT, PUB, HPUB, SUB, UNSUB, PING, PONG) and server → client (INFO,
// MSG, HMSG, +OK, -ERR, PING, PONG).
//
// The Parser is incremental and zero-copy: Next looks at the bytes it is
// given and returns a Frame whose byte slices point into them, so the caller
// decides when to copy. It is bounded: a control line longer than
// MaxControlLine, a payload larger than MaxPayload or a malformed line is an
// error of type *ProtocolError with a short Reason suitable as a metric
// label, after which the stream cannot be resynchronised and the connection
// should be closed.
//
// A Parser holds the state of one direction of one connection; it is not
// safe for concurrent use.
package nats
