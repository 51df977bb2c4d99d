package outlier

import (
	"errors"
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Envoy's defaults for unset OutlierDetection fields
// (envoy/config/cluster/v3/outlier_detection.proto).
const (
	DefaultInterval                   = 10 * time.Second
	DefaultBaseEjectionTime           = 30 * time.Second
	DefaultMaxEjectionTime            = 300 * time.Second // or base_ejection_time, whichever is larger
	DefaultMaxEjectionPercent         = 10
	DefaultConsecutive5xx             = 5
	DefaultConsecutiveGatewayFailure  = 5
	DefaultConsecutiveLocalOrigin     = 5
	DefaultSuccessRateMinimumHosts    = 5
	DefaultSuccessRateRequestVolume   = 100
	DefaultSuccessRateStdevFactor     = 1900
	DefaultFailurePercentageThreshold = 85
	DefaultFailurePercentageMinHosts  = 5
	DefaultFailurePercentageVolume    = 50
)

// Config is a validated envoy.config.cluster.v3.OutlierDetection with
// Envoy's defaults applied. Build it with ParseConfig or DefaultConfig: a
// Config's fields are used as they are, so the zero value disables every
// detector and ejects nothing.
type Config struct {
	// Interval is the time between ejection analysis sweeps (success rate,
	// failure percentage, returning hosts). Default 10s. Run treats a
	// value <= 0 as the default.
	Interval time.Duration
	// BaseEjectionTime is multiplied by the host's ejection multiplier to
	// give the ejection time. Default 30s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps BaseEjectionTime × multiplier. Default
	// max(300s, BaseEjectionTime).
	MaxEjectionTime time.Duration
	// MaxEjectionTimeJitter is the upper bound of a random extra ejection
	// time drawn at each ejection. Default 0.
	MaxEjectionTimeJitter time.Duration
	// MaxEjectionPercent is the largest share of the cluster's hosts, in
	// percent, that may be ejected at once. Default 10.
	MaxEjectionPercent uint32

	// Consecutive5xx is the number of consecutive 5xx answers (and, unless
	// SplitExternalLocalOriginErrors, local-origin failures) that trigger an
	// ejection. 0 disables it. Default 5.
	Consecutive5xx uint32
	// ConsecutiveGatewayFailure counts 502, 503 and 504 only. 0 disables
	// it. Default 5.
	ConsecutiveGatewayFailure uint32
	// SplitExternalLocalOriginErrors keeps local-origin events (connect
	// failures, timeouts, resets) apart from upstream answers: they feed
	// ConsecutiveLocalOriginFailure and the local-origin success rate and
	// failure percentage instead of the 5xx counters. Default false.
	SplitExternalLocalOriginErrors bool
	// ConsecutiveLocalOriginFailure is used only with
	// SplitExternalLocalOriginErrors. 0 disables it. Default 5.
	ConsecutiveLocalOriginFailure uint32

	// SuccessRateMinimumHosts is how many hosts must have
	// SuccessRateRequestVolume requests in an interval for success-rate
	// ejection to run. Default 5.
	SuccessRateMinimumHosts uint32
	// SuccessRateRequestVolume is the per-interval request count a host
	// needs to take part in success-rate ejection. Default 100.
	SuccessRateRequestVolume uint32
	// SuccessRateStdevFactor, divided by 1000, multiplies the standard
	// deviation: hosts below mean - stdev×factor are outliers. Default 1900.
	SuccessRateStdevFactor uint32

	// FailurePercentageThreshold ejects hosts whose failure percentage in an
	// interval is at least this. Default 85.
	FailurePercentageThreshold uint32
	// FailurePercentageMinimumHosts is how many hosts must have
	// FailurePercentageRequestVolume requests for failure-percentage
	// ejection to run. Default 5.
	FailurePercentageMinimumHosts uint32
	// FailurePercentageRequestVolume is the per-interval request count a
	// host needs to take part in failure-percentage ejection. Default 50.
	FailurePercentageRequestVolume uint32

	// The Enforcing fields are the chance, in percent, that a detected
	// outlier is really ejected. 0 never ejects, 100 always does.
	EnforcingConsecutive5xx                uint32 // default 100
	EnforcingConsecutiveGatewayFailure     uint32 // default 0
	EnforcingConsecutiveLocalOriginFailure uint32 // default 100
	EnforcingSuccessRate                   uint32 // default 100
	EnforcingLocalOriginSuccessRate        uint32 // default 100
	EnforcingFailurePercentage             uint32 // default 0
	EnforcingFailurePercentageLocalOrigin  uint32 // default 0

	// SuccessfulActiveHealthCheckUnejectHost returns an ejected host to
	// service as soon as it passes an active health check (when the cluster
	// has health_checks), clearing its consecutive-error counters; the
	// ejection-time multiplier is kept. Default true, as in Envoy.
	SuccessfulActiveHealthCheckUnejectHost bool
}

// DefaultConfig returns the Config of an empty OutlierDetection message.
func DefaultConfig() Config {
	return Config{
		Interval:                               DefaultInterval,
		BaseEjectionTime:                       DefaultBaseEjectionTime,
		MaxEjectionTime:                        DefaultMaxEjectionTime,
		MaxEjectionPercent:                     DefaultMaxEjectionPercent,
		Consecutive5xx:                         DefaultConsecutive5xx,
		ConsecutiveGatewayFailure:              DefaultConsecutiveGatewayFailure,
		ConsecutiveLocalOriginFailure:          DefaultConsecutiveLocalOrigin,
		SuccessRateMinimumHosts:                DefaultSuccessRateMinimumHosts,
		SuccessRateRequestVolume:               DefaultSuccessRateRequestVolume,
		SuccessRateStdevFactor:                 DefaultSuccessRateStdevFactor,
		FailurePercentageThreshold:             DefaultFailurePercentageThreshold,
		FailurePercentageMinimumHosts:          DefaultFailurePercentageMinHosts,
		FailurePercentageRequestVolume:         DefaultFailurePercentageVolume,
		EnforcingConsecutive5xx:                100,
		EnforcingConsecutiveLocalOriginFailure: 100,
		EnforcingSuccessRate:                   100,
		EnforcingLocalOriginSuccessRate:        100,
		SuccessfulActiveHealthCheckUnejectHost: true,
	}
}

// ParseConfig validates od and applies Envoy's defaults. It reports every
// bad field at once (errors.Join); each error names the field relative to
// the OutlierDetection message, e.g. "max_ejection_percent: must be <= 100".
// A nil od is treated as an empty message (all defaults).
func ParseConfig(od *clusterv3.OutlierDetection) (Config, error) {
	c := DefaultConfig()
	if od == nil {
		return c, nil
	}
	p := parser{}

	c.Interval = p.positiveDuration("interval", od.GetInterval(), c.Interval)
	c.BaseEjectionTime = p.positiveDuration("base_ejection_time", od.GetBaseEjectionTime(), c.BaseEjectionTime)
	c.MaxEjectionTime = max(DefaultMaxEjectionTime, c.BaseEjectionTime)
	if od.GetMaxEjectionTime() != nil {
		c.MaxEjectionTime = p.positiveDuration("max_ejection_time", od.GetMaxEjectionTime(), c.MaxEjectionTime)
		// envoy: DetectorImpl::create rejects a max below the base.
		if c.MaxEjectionTime > 0 && c.BaseEjectionTime > 0 && c.MaxEjectionTime < c.BaseEjectionTime {
			p.fail("max_ejection_time", "must be >= base_ejection_time")
		}
	}
	if j := od.GetMaxEjectionTimeJitter(); j != nil {
		if err := j.CheckValid(); err != nil {
			p.fail("max_ejection_time_jitter", "invalid duration")
		} else if d := j.AsDuration(); d < 0 {
			p.fail("max_ejection_time_jitter", "must be >= 0")
		} else {
			c.MaxEjectionTimeJitter = d
		}
	}

	c.MaxEjectionPercent = p.percent("max_ejection_percent", od.GetMaxEjectionPercent(), c.MaxEjectionPercent)
	c.Consecutive5xx = orDefault(od.GetConsecutive_5Xx(), c.Consecutive5xx)
	c.ConsecutiveGatewayFailure = orDefault(od.GetConsecutiveGatewayFailure(), c.ConsecutiveGatewayFailure)
	c.SplitExternalLocalOriginErrors = od.GetSplitExternalLocalOriginErrors()
	c.ConsecutiveLocalOriginFailure = orDefault(od.GetConsecutiveLocalOriginFailure(), c.ConsecutiveLocalOriginFailure)

	c.SuccessRateMinimumHosts = orDefault(od.GetSuccessRateMinimumHosts(), c.SuccessRateMinimumHosts)
	c.SuccessRateRequestVolume = orDefault(od.GetSuccessRateRequestVolume(), c.SuccessRateRequestVolume)
	c.SuccessRateStdevFactor = orDefault(od.GetSuccessRateStdevFactor(), c.SuccessRateStdevFactor)
	c.FailurePercentageThreshold = p.percent("failure_percentage_threshold", od.GetFailurePercentageThreshold(), c.FailurePercentageThreshold)
	c.FailurePercentageMinimumHosts = orDefault(od.GetFailurePercentageMinimumHosts(), c.FailurePercentageMinimumHosts)
	c.FailurePercentageRequestVolume = orDefault(od.GetFailurePercentageRequestVolume(), c.FailurePercentageRequestVolume)

	c.EnforcingConsecutive5xx = p.percent("enforcing_consecutive_5xx", od.GetEnforcingConsecutive_5Xx(), c.EnforcingConsecutive5xx)
	c.EnforcingConsecutiveGatewayFailure = p.percent("enforcing_consecutive_gateway_failure", od.GetEnforcingConsecutiveGatewayFailure(), c.EnforcingConsecutiveGatewayFailure)
	c.EnforcingConsecutiveLocalOriginFailure = p.percent("enforcing_consecutive_local_origin_failure", od.GetEnforcingConsecutiveLocalOriginFailure(), c.EnforcingConsecutiveLocalOriginFailure)
	c.EnforcingSuccessRate = p.percent("enforcing_success_rate", od.GetEnforcingSuccessRate(), c.EnforcingSuccessRate)
	c.EnforcingLocalOriginSuccessRate = p.percent("enforcing_local_origin_success_rate", od.GetEnforcingLocalOriginSuccessRate(), c.EnforcingLocalOriginSuccessRate)
	c.EnforcingFailurePercentage = p.percent("enforcing_failure_percentage", od.GetEnforcingFailurePercentage(), c.EnforcingFailurePercentage)
	c.EnforcingFailurePercentageLocalOrigin = p.percent("enforcing_failure_percentage_local_origin", od.GetEnforcingFailurePercentageLocalOrigin(), c.EnforcingFailurePercentageLocalOrigin)

	if u := od.GetSuccessfulActiveHealthCheckUnejectHost(); u != nil {
		c.SuccessfulActiveHealthCheckUnejectHost = u.GetValue()
	}

	// Fields whose behaviour is not implemented. A value that asks for what
	// the detector does anyway (false) is accepted.
	if od.GetAlwaysEjectOneHost().GetValue() {
		p.fail("always_eject_one_host", "not supported")
	}
	if od.GetDetectDegradedHosts().GetValue() {
		p.fail("detect_degraded_hosts", "not supported")
	}
	if len(od.GetMonitors()) > 0 {
		p.fail("monitors", "not supported")
	}
	if err := errors.Join(p.errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// parser accumulates field errors.
type parser struct{ errs []error }

func (p *parser) fail(field, msg string) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", field, msg))
}

func (p *parser) positiveDuration(field string, d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	if err := d.CheckValid(); err != nil {
		p.fail(field, "invalid duration")
		return 0
	}
	v := d.AsDuration()
	if v <= 0 {
		p.fail(field, "must be > 0")
		return 0
	}
	return v
}

// orDefault returns v's value, or def when v is unset.
func orDefault(v *wrapperspb.UInt32Value, def uint32) uint32 {
	if v == nil {
		return def
	}
	return v.GetValue()
}

func (p *parser) percent(field string, v *wrapperspb.UInt32Value, def uint32) uint32 {
	if v == nil {
		return def
	}
	if v.GetValue() > 100 {
		p.fail(field, "must be <= 100")
	}
	return v.GetValue()
}
