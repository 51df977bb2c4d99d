package health

import "time"

// result is the outcome of one check, classified as Envoy classifies it
// (envoy.data.core.v3.HealthCheckFailureType).
type result uint8

const (
	success result = iota
	// failNetwork is a connection failure or reset (NETWORK). It counts
	// towards unhealthy_threshold.
	failNetwork
	// failTimeout is a check that did not finish within timeout
	// (NETWORK_TIMEOUT). It counts towards unhealthy_threshold.
	failTimeout
	// failRetriable is an HTTP status in retriable_statuses (ACTIVE,
	// retriable). It counts towards unhealthy_threshold.
	failRetriable
	// failActive is an answer that says the host is unhealthy (ACTIVE): an
	// HTTP status outside expected and retriable statuses, a gRPC status
	// other than SERVING. It fails the host at once, ignoring
	// unhealthy_threshold.
	failActive
)

func (r result) String() string {
	return [...]string{"success", "network", "timeout", "retriable", "active"}[r]
}

// network reports whether r is one of Envoy's network failure types, counted
// in health_check.network_failure.
func (r result) network() bool { return r == failNetwork || r == failTimeout }

// transition is what a check result did to the host's verdict
// (Envoy's HealthTransition).
type transition uint8

const (
	unchanged transition = iota
	changed
	// pending: the result differs from the verdict but a threshold has not
	// been reached yet.
	pending
)

// hostState is one host's verdict and counters. It holds no lock: one
// goroutine owns it.
type hostState struct {
	failed    bool // the verdict: FAILED_ACTIVE_HC
	checked   bool // a check has completed (Envoy: !first_check_)
	healthy   uint32
	unhealthy uint32
}

// record applies one check result, following Envoy's
// ActiveHealthCheckSession::handleSuccess and handleFailure:
//   - a success makes a failed host healthy after healthy consecutive
//     successes, or at once when it is the host's first check ("during
//     startup, only a single successful health check is required");
//   - a counted failure makes a healthy host unhealthy after unhealthy
//     consecutive failures; failActive does so at once.
func (s *hostState) record(r result, healthy, unhealthy uint32) transition {
	first := !s.checked
	s.checked = true
	if r == success {
		s.unhealthy = 0
		if !s.failed {
			return unchanged
		}
		s.healthy++
		if first || s.healthy >= healthy {
			s.failed, s.healthy = false, 0
			return changed
		}
		return pending
	}
	s.healthy = 0
	if s.failed {
		return unchanged
	}
	s.unhealthy++
	if r == failActive || s.unhealthy >= unhealthy {
		s.failed, s.unhealthy = true, 0
		return changed
	}
	return pending
}

// next returns the wait before the following check, after a check whose
// result was r and which did tr to the verdict. It follows Envoy's
// HealthCheckerImplBase::interval: until the cluster has traffic the no
// traffic intervals apply; then a success waits interval (healthy_edge_interval
// while a recovery is pending) and a failure waits unhealthy_interval
// (unhealthy_edge_interval while a failure is pending). Jitter is added.
// rnd(n) returns a random int64 in [0, n).
func (c *Config) next(r result, tr transition, traffic bool, rnd func(int64) int64) time.Duration {
	ok := r == success
	var base time.Duration
	switch {
	case !traffic && ok && tr != pending:
		base = c.NoTrafficHealthyInterval
	case !traffic:
		base = c.NoTrafficInterval
	case ok && tr == pending:
		base = c.HealthyEdgeInterval
	case ok:
		base = c.Interval
	case tr == pending:
		base = c.UnhealthyEdgeInterval
	default:
		base = c.UnhealthyInterval
	}
	return jitter(base, c.IntervalJitter, c.IntervalJitterPercent, rnd)
}

// first returns the wait before a host's first check: a random time below
// initial_jitter, or none.
func (c *Config) first(rnd func(int64) int64) time.Duration {
	if c.InitialJitter <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(c.InitialJitter)))
}

// jitter is Envoy's intervalWithJitter: base plus a random part of
// base*percent/100 plus a random part of j, at least 1ms.
func jitter(base, j time.Duration, percent uint32, rnd func(int64) int64) time.Duration {
	d := base
	if p := time.Duration(uint64(base) * uint64(percent) / 100); p > 0 {
		d += time.Duration(rnd(int64(p)))
	}
	if j > 0 {
		d += time.Duration(rnd(int64(j)))
	}
	return max(d, time.Millisecond)
}
