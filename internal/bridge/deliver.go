package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"
)

// subRunner runs one subscription: Consume in a loop (reconnecting with
// back-off) and the lag poller.
type subRunner struct {
	sub    Subscription
	broker client
	b      *Bridge
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

func (b *Bridge) startSub(s Subscription, c client) *subRunner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &subRunner{sub: s, broker: c, b: b, cancel: cancel, done: make(chan struct{}),
		log: b.log.With("subscription", s.Name, "broker", s.Broker, "topic", s.Topic)}
	go r.run(ctx)
	return r
}

// stop cancels the subscription and waits until no delivery is in flight.
func (r *subRunner) stop() {
	r.cancel()
	<-r.done
}

func (r *subRunner) run(ctx context.Context) {
	defer close(r.done)
	lagDone := make(chan struct{})
	go func() { defer close(lagDone); r.pollLag(ctx) }()
	defer func() { <-lagDone }()
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := r.broker.Consume(ctx, &r.sub, r.settle)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 10*time.Second {
			pause = 100 * time.Millisecond
		}
		r.log.Warn("consumer stopped; reconnecting", "err", err, "in", pause)
		if !sleep(ctx, pause) {
			return
		}
		pause = min(pause*2, 5*time.Second)
	}
}

func (r *subRunner) pollLag(ctx context.Context) {
	t := time.NewTicker(r.b.o.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lctx, cancel := context.WithTimeout(ctx, r.b.o.LagInterval)
		n, err := r.broker.Lag(lctx, &r.sub)
		cancel()
		if err == nil {
			r.b.m.lag.WithLabelValues(r.sub.Name).Set(float64(n))
		}
	}
}

// settle delivers m until the application accepts it or the attempts are
// spent, then dead-letters it. It returns nil when m may be acknowledged
// to the broker and an error only when ctx ended first (m must then be
// left to the broker's redelivery).
func (r *subRunner) settle(ctx context.Context, m *Message) error {
	s := &r.sub
	var reason string
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			r.b.m.retries.WithLabelValues(s.Name).Inc()
		}
		result, why := r.post(ctx, m, attempt)
		r.b.m.delivered.WithLabelValues(s.Name, s.Broker, s.Topic, result).Inc()
		if result == deliveredOK {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		reason = why
		if attempt >= s.MaxDeliveries {
			return r.giveUp(ctx, m, reason, attempt)
		}
		if !sleep(ctx, backoff(s.BackoffBase, s.BackoffMax, attempt)) {
			return ctx.Err()
		}
	}
}

// post makes one delivery attempt: the result label and, on failure, why.
func (r *subRunner) post(ctx context.Context, m *Message, attempt int) (result, why string) {
	pctx, cancel := context.WithTimeout(ctx, r.sub.DeliveryTimeout)
	defer cancel()
	req, err := m.httpRequest(pctx, r.sub.URL, attempt)
	if err != nil {
		return deliveredError, err.Error()
	}
	resp, err := r.b.o.Client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return deliveredError, fmt.Sprintf("no answer within %v", r.sub.DeliveryTimeout)
		}
		return deliveredError, err.Error()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return deliveredOK, ""
	}
	return deliveredRejected, fmt.Sprintf("application answered %d", resp.StatusCode)
}

// giveUp publishes m to the dead-letter topic (retrying until the broker
// takes it or ctx ends) or, without one, drops it.
func (r *subRunner) giveUp(ctx context.Context, m *Message, reason string, attempts int) error {
	s := &r.sub
	if s.DeadLetter == "" {
		r.b.m.delivered.WithLabelValues(s.Name, s.Broker, s.Topic, deliveredDropped).Inc()
		r.log.Warn("message dropped: deliveries exhausted and no dead-letter topic", "id", m.Attrs["id"], "attempts", attempts, "reason", reason)
		return nil
	}
	dl := m.withDeadLetter(reason, s.Topic, attempts)
	pause := s.BackoffBase
	for {
		pctx, cancel := context.WithTimeout(ctx, r.b.o.PublishTimeout)
		err := r.broker.Publish(pctx, s.DeadLetter, dl)
		cancel()
		if err == nil {
			r.b.m.delivered.WithLabelValues(s.Name, s.Broker, s.Topic, deliveredDead).Inc()
			r.b.m.deadLettered.WithLabelValues(s.Name).Inc()
			return nil
		}
		r.log.Warn("dead-letter publish failed; retrying", "deadLetter", s.DeadLetter, "err", err)
		if !sleep(ctx, pause) {
			return ctx.Err()
		}
		pause = min(pause*2, s.BackoffMax)
	}
}

// backoff is the pause after a failed attempt: base·2^(attempt-1) capped
// at max, with ±20 % jitter so failing consumers do not retry in step.
func backoff(base, maxDelay time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// sleep waits d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
