package outlier

// Outcome is what happened to one request (or connection) sent to a host,
// as the router or TCP proxy reports it with Detector.Report. It mirrors
// Envoy's Upstream::Outlier::Result plus putHttpResponseCode.
type Outcome uint8

// The outcomes. How each one counts depends on
// split_external_local_origin_errors:
//
//	Outcome         not split                      split
//	Success         as HTTP 200                    as HTTP 200 and a local-origin success
//	Failure         as HTTP 500                    as HTTP 503
//	HTTPStatus      the status                     the status
//	ConnectSuccess  ignored                        local-origin success
//	ConnectFailure  as HTTP 503                    local-origin failure
//	Reset           as HTTP 503                    local-origin failure
//	Timeout         as HTTP 504                    local-origin failure
//
// 5xx statuses count towards consecutive_5xx, 502, 503 and 504 also
// towards consecutive_gateway_failure; any other status is a success.
const (
	// Success is a transaction (e.g. a TCP proxy session) that completed
	// without error (Envoy: EXT_ORIGIN_REQUEST_SUCCESS). HTTP callers report
	// HTTPStatus instead.
	Success Outcome = iota
	// Failure is a transaction the upstream failed after the connection
	// was made, for protocols without a status (EXT_ORIGIN_REQUEST_FAILED).
	Failure
	// HTTPStatus is an HTTP answer from the upstream; the status is
	// Report's third argument.
	HTTPStatus
	// ConnectSuccess is a connection established to the host (or a pooled
	// one handed out) for a request (LOCAL_ORIGIN_CONNECT_SUCCESS).
	ConnectSuccess
	// ConnectFailure is a failure to connect to the host
	// (LOCAL_ORIGIN_CONNECT_FAILED).
	ConnectFailure
	// Reset is the upstream connection or stream reset before an answer;
	// Envoy's router reports it as LOCAL_ORIGIN_CONNECT_FAILED.
	Reset
	// Timeout is a request that timed out waiting for the host
	// (LOCAL_ORIGIN_TIMEOUT).
	Timeout
)

func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case HTTPStatus:
		return "http_status"
	case ConnectSuccess:
		return "connect_success"
	case ConnectFailure:
		return "connect_failure"
	case Reset:
		return "reset"
	case Timeout:
		return "timeout"
	}
	return "unknown"
}

// EjectionType says which detector found a host to be an outlier. The
// values and their order follow envoy.data.cluster.v3.OutlierEjectionType.
type EjectionType uint8

// The ejection types.
const (
	Consecutive5xx EjectionType = iota
	ConsecutiveGatewayFailure
	SuccessRate
	ConsecutiveLocalOriginFailure
	SuccessRateLocalOrigin
	FailurePercentage
	FailurePercentageLocalOrigin
)

// String returns the type as Envoy's outlier_detection stats name it
// (ejections_enforced_<type>, ejections_detected_<type>).
func (t EjectionType) String() string {
	switch t {
	case Consecutive5xx:
		return "consecutive_5xx"
	case ConsecutiveGatewayFailure:
		return "consecutive_gateway_failure"
	case SuccessRate:
		return "success_rate"
	case ConsecutiveLocalOriginFailure:
		return "consecutive_local_origin_failure"
	case SuccessRateLocalOrigin:
		return "local_origin_success_rate"
	case FailurePercentage:
		return "failure_percentage"
	case FailurePercentageLocalOrigin:
		return "local_origin_failure_percentage"
	}
	return "unknown"
}

// enforcing returns the enforcing_* percentage of t.
func (c *Config) enforcing(t EjectionType) uint32 {
	switch t {
	case Consecutive5xx:
		return c.EnforcingConsecutive5xx
	case ConsecutiveGatewayFailure:
		return c.EnforcingConsecutiveGatewayFailure
	case SuccessRate:
		return c.EnforcingSuccessRate
	case ConsecutiveLocalOriginFailure:
		return c.EnforcingConsecutiveLocalOriginFailure
	case SuccessRateLocalOrigin:
		return c.EnforcingLocalOriginSuccessRate
	case FailurePercentage:
		return c.EnforcingFailurePercentage
	case FailurePercentageLocalOrigin:
		return c.EnforcingFailurePercentageLocalOrigin
	}
	return 0
}
