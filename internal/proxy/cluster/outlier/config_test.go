package outlier

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func u32(v uint32) *wrapperspb.UInt32Value     { return wrapperspb.UInt32(v) }
func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func TestParseConfig(t *testing.T) {
	def := DefaultConfig()
	tests := []struct {
		name string
		od   *clusterv3.OutlierDetection
		want func(c *Config)
	}{
		{name: "nil", od: nil},
		{name: "empty", od: &clusterv3.OutlierDetection{}},
		{
			name: "every field",
			od: &clusterv3.OutlierDetection{
				Consecutive_5Xx:                        u32(3),
				Interval:                               dur(time.Second),
				BaseEjectionTime:                       dur(2 * time.Second),
				MaxEjectionPercent:                     u32(50),
				EnforcingConsecutive_5Xx:               u32(90),
				EnforcingSuccessRate:                   u32(80),
				SuccessRateMinimumHosts:                u32(3),
				SuccessRateRequestVolume:               u32(10),
				SuccessRateStdevFactor:                 u32(1000),
				ConsecutiveGatewayFailure:              u32(4),
				EnforcingConsecutiveGatewayFailure:     u32(70),
				SplitExternalLocalOriginErrors:         true,
				ConsecutiveLocalOriginFailure:          u32(6),
				EnforcingConsecutiveLocalOriginFailure: u32(60),
				EnforcingLocalOriginSuccessRate:        u32(50),
				FailurePercentageThreshold:             u32(40),
				EnforcingFailurePercentage:             u32(30),
				EnforcingFailurePercentageLocalOrigin:  u32(20),
				FailurePercentageMinimumHosts:          u32(2),
				FailurePercentageRequestVolume:         u32(7),
				MaxEjectionTime:                        dur(9 * time.Second),
				MaxEjectionTimeJitter:                  dur(time.Second),
				AlwaysEjectOneHost:                     wrapperspb.Bool(false),
				DetectDegradedHosts:                    wrapperspb.Bool(false),
				SuccessfulActiveHealthCheckUnejectHost: wrapperspb.Bool(false),
			},
			want: func(c *Config) {
				*c = Config{
					Interval: time.Second, BaseEjectionTime: 2 * time.Second, MaxEjectionTime: 9 * time.Second,
					MaxEjectionTimeJitter: time.Second, MaxEjectionPercent: 50,
					Consecutive5xx: 3, ConsecutiveGatewayFailure: 4, SplitExternalLocalOriginErrors: true,
					ConsecutiveLocalOriginFailure: 6,
					SuccessRateMinimumHosts:       3, SuccessRateRequestVolume: 10, SuccessRateStdevFactor: 1000,
					FailurePercentageThreshold: 40, FailurePercentageMinimumHosts: 2, FailurePercentageRequestVolume: 7,
					EnforcingConsecutive5xx: 90, EnforcingConsecutiveGatewayFailure: 70,
					EnforcingConsecutiveLocalOriginFailure: 60, EnforcingSuccessRate: 80,
					EnforcingLocalOriginSuccessRate: 50, EnforcingFailurePercentage: 30,
					EnforcingFailurePercentageLocalOrigin: 20,
				}
			},
		},
		{
			name: "zero thresholds disable",
			od:   &clusterv3.OutlierDetection{Consecutive_5Xx: u32(0), ConsecutiveGatewayFailure: u32(0), ConsecutiveLocalOriginFailure: u32(0)},
			want: func(c *Config) {
				c.Consecutive5xx, c.ConsecutiveGatewayFailure, c.ConsecutiveLocalOriginFailure = 0, 0, 0
			},
		},
		{
			name: "max_ejection_time defaults to base when base is larger",
			od:   &clusterv3.OutlierDetection{BaseEjectionTime: dur(400 * time.Second)},
			want: func(c *Config) { c.BaseEjectionTime, c.MaxEjectionTime = 400*time.Second, 400*time.Second },
		},
		{
			name: "max_ejection_time equal to base",
			od:   &clusterv3.OutlierDetection{BaseEjectionTime: dur(5 * time.Second), MaxEjectionTime: dur(5 * time.Second)},
			want: func(c *Config) { c.BaseEjectionTime, c.MaxEjectionTime = 5*time.Second, 5*time.Second },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig(tc.od)
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			want := def
			if tc.want != nil {
				tc.want(&want)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		od   *clusterv3.OutlierDetection
		want []string
	}{
		{name: "interval zero", od: &clusterv3.OutlierDetection{Interval: dur(0)}, want: []string{"interval: must be > 0"}},
		{name: "interval invalid", od: &clusterv3.OutlierDetection{Interval: &durationpb.Duration{Seconds: 1, Nanos: -1}}, want: []string{"interval: invalid duration"}},
		{name: "base negative", od: &clusterv3.OutlierDetection{BaseEjectionTime: dur(-time.Second)}, want: []string{"base_ejection_time: must be > 0"}},
		{name: "max zero", od: &clusterv3.OutlierDetection{MaxEjectionTime: dur(0)}, want: []string{"max_ejection_time: must be > 0"}},
		{name: "max below base", od: &clusterv3.OutlierDetection{BaseEjectionTime: dur(10 * time.Second), MaxEjectionTime: dur(5 * time.Second)}, want: []string{"max_ejection_time: must be >= base_ejection_time"}},
		{name: "jitter negative", od: &clusterv3.OutlierDetection{MaxEjectionTimeJitter: dur(-time.Second)}, want: []string{"max_ejection_time_jitter: must be >= 0"}},
		{name: "max_ejection_percent", od: &clusterv3.OutlierDetection{MaxEjectionPercent: u32(101)}, want: []string{"max_ejection_percent: must be <= 100"}},
		{name: "failure_percentage_threshold", od: &clusterv3.OutlierDetection{FailurePercentageThreshold: u32(101)}, want: []string{"failure_percentage_threshold: must be <= 100"}},
		{
			name: "every enforcing field",
			od: &clusterv3.OutlierDetection{
				EnforcingConsecutive_5Xx:               u32(101),
				EnforcingConsecutiveGatewayFailure:     u32(101),
				EnforcingConsecutiveLocalOriginFailure: u32(101),
				EnforcingSuccessRate:                   u32(101),
				EnforcingLocalOriginSuccessRate:        u32(101),
				EnforcingFailurePercentage:             u32(101),
				EnforcingFailurePercentageLocalOrigin:  u32(101),
			},
			want: []string{
				"enforcing_consecutive_5xx: must be <= 100",
				"enforcing_consecutive_gateway_failure: must be <= 100",
				"enforcing_consecutive_local_origin_failure: must be <= 100",
				"enforcing_success_rate: must be <= 100",
				"enforcing_local_origin_success_rate: must be <= 100",
				"enforcing_failure_percentage: must be <= 100",
				"enforcing_failure_percentage_local_origin: must be <= 100",
			},
		},
		{
			name: "unsupported fields",
			od: &clusterv3.OutlierDetection{
				AlwaysEjectOneHost:  wrapperspb.Bool(true),
				DetectDegradedHosts: wrapperspb.Bool(true),
				Monitors:            []*corev3.TypedExtensionConfig{{Name: "m"}},
			},
			want: []string{
				"always_eject_one_host: not supported",
				"detect_degraded_hosts: not supported",
				"monitors: not supported",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(tc.od)
			if err == nil {
				t.Fatal("ParseConfig: no error")
			}
			if diff := cmp.Diff(tc.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}
