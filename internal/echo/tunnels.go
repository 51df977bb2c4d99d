package echo

import (
	"context"
	"io"
	"sync"
	"time"
)

// tunnels tracks the connections net/http's Shutdown neither waits for nor
// closes: hijacked ones (WebSocket, raw upgrade) and raw TCP echo ones. The
// zero value is ready to use.
type tunnels struct {
	mu       sync.Mutex
	conns    map[io.Closer]struct{}
	draining bool
	changed  chan struct{} // closed and replaced whenever a conn is removed
}

// add starts tracking c and reports whether it may be served; once the
// server drains, new tunnels are refused.
func (t *tunnels) add(c io.Closer) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining {
		return false
	}
	if t.conns == nil {
		t.conns = make(map[io.Closer]struct{})
		t.changed = make(chan struct{})
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *tunnels) remove(c io.Closer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
	close(t.changed)
	t.changed = make(chan struct{})
}

// drain refuses new tunnels from now on.
func (t *tunnels) drain() {
	t.mu.Lock()
	t.draining = true
	t.mu.Unlock()
}

// wait returns when no tunnel is open, or ctx's error when ctx is done
// first.
func (t *tunnels) wait(ctx context.Context) error {
	for {
		t.mu.Lock()
		n, changed := len(t.conns), t.changed
		t.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// closeAll closes every open tunnel; their goroutines then remove them.
func (t *tunnels) closeAll() {
	t.mu.Lock()
	open := make([]io.Closer, 0, len(t.conns))
	for c := range t.conns {
		open = append(open, c)
	}
	t.mu.Unlock()
	past := time.Unix(1, 0)
	for _, c := range open {
		// A deadline in the past fails pending I/O at once. Without it a
		// WebSocket Close, which writes a close frame under the lock a
		// blocked Send holds, could wait on a client that stopped reading.
		if d, ok := c.(interface{ SetDeadline(time.Time) error }); ok {
			_ = d.SetDeadline(past)
		}
		c.Close()
	}
}
