package hcm

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// replayBody keeps the start of a request body so a retry can send it
// again. Bytes are read from the downstream once, on demand, and kept up
// to limit; past it the body is no longer replayable and the request is not
// retried (Envoy's behaviour with per_request_buffer_limit_bytes).
//
// Each attempt reads through its own attemptBody. An upstream client may
// keep reading an attempt's body after the attempt ended, so a superseded
// attemptBody fails its reads instead of consuming bytes the next attempt
// needs.
type replayBody struct {
	mu       sync.Mutex
	src      io.ReadCloser
	buf      []byte
	limit    int64
	overflow bool
	eof      bool
	srcErr   error
	current  *attemptBody
	n        int64 // bytes read from the downstream, accessed atomically
}

type attemptBody struct {
	rb     *replayBody
	off    int  // next byte of rb.buf to replay
	live   bool // this attempt has read from the downstream itself
	closed bool
}

var errSuperseded = errors.New("request body: attempt superseded by a retry")

func newReplayBody(src io.ReadCloser, limit int64) *replayBody {
	return &replayBody{src: src, limit: limit}
}

// attempt returns the body for the next attempt; earlier attempts' bodies
// stop reading.
func (rb *replayBody) attempt() *attemptBody {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if rb.current != nil {
		rb.current.closed = true
	}
	rb.current = &attemptBody{rb: rb}
	return rb.current
}

// replayable reports whether everything read so far is still kept.
func (rb *replayBody) replayable() bool {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return !rb.overflow && rb.srcErr == nil
}

func (rb *replayBody) count() int64 { return atomic.LoadInt64(&rb.n) }

func (a *attemptBody) Read(p []byte) (int, error) {
	rb := a.rb
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if a.closed {
		return 0, errSuperseded
	}
	if a.off < len(rb.buf) {
		n := copy(p, rb.buf[a.off:])
		a.off += n
		return n, nil
	}
	if rb.eof {
		return 0, io.EOF
	}
	if rb.srcErr != nil {
		return 0, rb.srcErr
	}
	if rb.overflow && !a.live {
		// Another attempt read bytes that were not kept.
		return 0, errors.New("request body: too large to replay")
	}
	n, err := rb.src.Read(p)
	atomic.AddInt64(&rb.n, int64(n))
	a.live = true
	if n > 0 && !rb.overflow {
		if int64(len(rb.buf)+n) > rb.limit {
			rb.overflow, rb.buf = true, nil
		} else {
			rb.buf = append(rb.buf, p[:n]...)
			a.off = len(rb.buf)
		}
	}
	switch {
	case err == io.EOF:
		rb.eof = true
	case err != nil:
		rb.srcErr = err
	}
	return n, err
}

// Close is a no-op: the downstream body belongs to the request, not to
// one attempt.
func (a *attemptBody) Close() error { return nil }

// complete returns the whole body when it was read to its end and kept.
func (rb *replayBody) complete() ([]byte, bool) {
	if rb == nil {
		return nil, false
	}
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.buf, rb.eof && !rb.overflow
}
