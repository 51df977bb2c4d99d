// Package ratelimit is Envoy's local rate limiting: a token bucket
// (envoy.type.v3.TokenBucket) and the network filter
// envoy.filters.network.local_ratelimit, which admits new connections while
// the bucket has tokens and closes the others at once.
//
// A Bucket is safe for concurrent use. Buckets belong to a configuration
// snapshot: a reload starts them full again (Envoy does the same unless
// share_key is used, which Trellis does not support).
package ratelimit

import (
	"errors"
	"fmt"
	"sync"
	"time"

	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// Bucket is a token bucket: it holds at most max tokens, gains perFill
// tokens every interval, and each admitted unit of work takes one.
type Bucket struct {
	mu       sync.Mutex
	tokens   int64
	max      int64
	perFill  int64
	interval time.Duration
	last     time.Time // time of the last fill
}

// NewBucket builds a Bucket from an Envoy TokenBucket; it starts full.
// Errors name the field.
func NewBucket(tb *typev3.TokenBucket) (*Bucket, error) {
	if tb == nil {
		return nil, errors.New("token_bucket: required")
	}
	b := &Bucket{max: int64(tb.GetMaxTokens()), perFill: 1, interval: tb.GetFillInterval().AsDuration()}
	if tb.GetMaxTokens() == 0 {
		return nil, errors.New("token_bucket.max_tokens: must be > 0")
	}
	if pf := tb.GetTokensPerFill(); pf != nil {
		b.perFill = int64(pf.GetValue())
	}
	if b.perFill <= 0 {
		return nil, errors.New("token_bucket.tokens_per_fill: must be > 0")
	}
	if b.interval <= 0 {
		return nil, errors.New("token_bucket.fill_interval: must be > 0")
	}
	b.tokens, b.last = b.max, time.Now()
	return b, nil
}

// Allow takes a token if there is one.
func (b *Bucket) Allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(time.Now())
	if b.tokens == 0 {
		return false
	}
	b.tokens--
	return true
}

// refill adds the fills due by now; b.mu must be held.
func (b *Bucket) refill(now time.Time) {
	if now.Sub(b.last) >= b.interval {
		fills := int64(now.Sub(b.last) / b.interval)
		b.tokens = min(b.max, b.tokens+fills*b.perFill)
		b.last = b.last.Add(time.Duration(fills) * b.interval)
	}
}

// Network is a configured local_ratelimit network filter.
type Network struct {
	StatPrefix string
	Bucket     *Bucket
	// Stats counts the filter's decisions; nil counts nothing.
	Stats *metrics.RateLimit
}

// Allow decides one new connection and counts the decision.
func (n *Network) Allow() bool {
	if n.Bucket.Allow() {
		n.Stats.OK()
		return true
	}
	n.Stats.Limited()
	return false
}

// NewNetwork builds the network filter. Errors name fields relative to
// the LocalRateLimit message.
func NewNetwork(pb *localratelimitv3.LocalRateLimit) (*Network, error) {
	if pb.GetRuntimeEnabled() != nil {
		return nil, errors.New("runtime_enabled: not supported (Trellis has no runtime)")
	}
	if pb.GetShareKey() != "" {
		return nil, errors.New("share_key: not supported")
	}
	b, err := NewBucket(pb.GetTokenBucket())
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	return &Network{StatPrefix: pb.GetStatPrefix(), Bucket: b}, nil
}
