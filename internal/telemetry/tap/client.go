package tap

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DropReportInterval is how often a proxy reports dropped events.
const DropReportInterval = time.Second

// RunOptions configure Run.
type RunOptions struct {
	// Backoff returns the wait before opening the stream again, given how
	// long the last one lived. Nil: 1 s.
	Backoff func(lived time.Duration) time.Duration
	// Logger receives the client's logs (nil: discarded).
	Logger *slog.Logger
}

// Run holds the tap stream to the control plane on conn, announcing the
// proxy's xDS node id, until ctx ends,
// opening it again after opts.Backoff whenever it breaks. While the
// stream is down no subscription is open, so requests pay nothing.
func (t *Tap) Run(ctx context.Context, conn grpc.ClientConnInterface, node string, opts RunOptions) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for ctx.Err() == nil {
		start := time.Now()
		err := t.stream(ctx, conn, node)
		t.CancelAll()
		if ctx.Err() != nil {
			return
		}
		lived := time.Since(start)
		d := time.Second
		if opts.Backoff != nil {
			d = opts.Backoff(lived)
		}
		if status.Code(err) == codes.Unimplemented {
			d = max(d, time.Minute) // a control plane without tap
		}
		log.Debug("tap stream ended", "error", err, "retry_in", d)
		tm := time.NewTimer(d)
		select {
		case <-ctx.Done():
			tm.Stop()
			return
		case <-tm.C:
		}
	}
}

// stream runs one stream until it fails or ctx ends.
func (t *Tap) stream(ctx context.Context, conn grpc.ClientConnInterface, node string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := conn.NewStream(ctx, &watchDesc, WatchMethod)
	if err != nil {
		return err
	}
	if err := sendJSON(cs, &FromProxy{Node: node}); err != nil {
		return err
	}
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for {
			var m ToProxy
			if err := recvJSON(cs, &m); err != nil {
				errc <- err
				return
			}
			switch {
			case m.Subscribe != nil:
				t.Subscribe(*m.Subscribe)
			case m.Cancel != "":
				t.Cancel(m.Cancel)
			}
		}
	})
	tick := time.NewTicker(DropReportInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case m := <-t.queue:
			if err := sendJSON(cs, m); err != nil {
				return err
			}
		case <-tick.C:
			for id, n := range t.TakeDropped() {
				if err := sendJSON(cs, &FromProxy{Sub: id, Dropped: n}); err != nil {
					return err
				}
			}
		}
	}
}
