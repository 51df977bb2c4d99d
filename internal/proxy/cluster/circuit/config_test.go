package circuit

import (
	"math"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type thresholds = clusterv3.CircuitBreakers_Thresholds
type retryBudget = clusterv3.CircuitBreakers_Thresholds_RetryBudget

const high = corev3.RoutingPriority_HIGH

func u32(v uint32) *wrapperspb.UInt32Value { return wrapperspb.UInt32(v) }

func TestParseConfig(t *testing.T) {
	d := Defaults()
	custom := Thresholds{MaxConnections: 10, MaxPendingRequests: 20, MaxRequests: 30, MaxRetries: 4}
	zero := Thresholds{}
	tests := []struct {
		name string
		cb   *clusterv3.CircuitBreakers
		want Priorities
	}{
		{name: "nil", cb: nil, want: Priorities{d, d}},
		{name: "empty", cb: &clusterv3.CircuitBreakers{}, want: Priorities{d, d}},
		{
			name: "default only",
			cb: &clusterv3.CircuitBreakers{Thresholds: []*thresholds{{
				MaxConnections: u32(10), MaxPendingRequests: u32(20), MaxRequests: u32(30), MaxRetries: u32(4),
			}}},
			want: Priorities{custom, d},
		},
		{
			name: "high only, partial",
			cb:   &clusterv3.CircuitBreakers{Thresholds: []*thresholds{{Priority: high, MaxRequests: u32(7)}}},
			want: Priorities{d, {MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 7, MaxRetries: 3}},
		},
		{
			name: "explicit zeros are limits",
			cb: &clusterv3.CircuitBreakers{Thresholds: []*thresholds{{
				MaxConnections: u32(0), MaxPendingRequests: u32(0), MaxRequests: u32(0), MaxRetries: u32(0),
			}}},
			want: Priorities{zero, d},
		},
		{
			name: "first of a priority wins",
			cb: &clusterv3.CircuitBreakers{Thresholds: []*thresholds{
				{Priority: high, MaxRetries: u32(1)},
				{MaxRetries: u32(2)},
				{Priority: high, MaxRetries: u32(9)},
			}},
			want: Priorities{{1024, 1024, 1024, 2, nil, false}, {1024, 1024, 1024, 1, nil, false}},
		},
		{
			name: "budget defaults",
			cb:   &clusterv3.CircuitBreakers{Thresholds: []*thresholds{{RetryBudget: &retryBudget{}}}},
			want: Priorities{MeshDefaults(), d},
		},
		{
			name: "budget explicit, zero interval, track remaining",
			cb: &clusterv3.CircuitBreakers{Thresholds: []*thresholds{{
				Priority:       high,
				TrackRemaining: true,
				MaxRetries:     u32(50),
				RetryBudget: &retryBudget{
					BudgetPercent:       &typev3.Percent{Value: 12.5},
					MinRetryConcurrency: u32(0),
					BudgetInterval:      durationpb.New(0),
				},
			}}},
			want: Priorities{d, {
				MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 50,
				Budget: &Budget{Percent: 12.5}, TrackRemaining: true,
			}},
		},
		{
			name: "budget bounds",
			cb: &clusterv3.CircuitBreakers{Thresholds: []*thresholds{
				{RetryBudget: &retryBudget{BudgetPercent: &typev3.Percent{Value: 0}}},
				{Priority: high, RetryBudget: &retryBudget{BudgetPercent: &typev3.Percent{Value: 100}}},
			}},
			want: Priorities{
				{1024, 1024, 1024, 3, &Budget{Percent: 0, MinConcurrency: 3}, false},
				{1024, 1024, 1024, 3, &Budget{Percent: 100, MinConcurrency: 3}, false},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig(tc.cb)
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseConfig (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	pct := func(v float64) *retryBudget { return &retryBudget{BudgetPercent: &typev3.Percent{Value: v}} }
	tests := []struct {
		name string
		cb   *clusterv3.CircuitBreakers
		want []string // substrings, all of which must appear
	}{
		{
			name: "per host thresholds",
			cb:   &clusterv3.CircuitBreakers{PerHostThresholds: []*thresholds{{MaxConnections: u32(1)}}},
			want: []string{"per_host_thresholds: not supported"},
		},
		{
			name: "budget percent above 100",
			cb:   &clusterv3.CircuitBreakers{Thresholds: []*thresholds{{}, {Priority: high, RetryBudget: pct(100.5)}}},
			want: []string{"thresholds[1].retry_budget.budget_percent.value: must be in [0,100]"},
		},
		{
			name: "budget percent negative",
			cb:   &clusterv3.CircuitBreakers{Thresholds: []*thresholds{{RetryBudget: pct(-1)}}},
			want: []string{"thresholds[0].retry_budget.budget_percent.value: must be in [0,100]"},
		},
		{
			name: "budget percent NaN",
			cb:   &clusterv3.CircuitBreakers{Thresholds: []*thresholds{{RetryBudget: pct(math.NaN())}}},
			want: []string{"thresholds[0].retry_budget.budget_percent.value: must be in [0,100]"},
		},
		{
			name: "budget interval",
			cb: &clusterv3.CircuitBreakers{Thresholds: []*thresholds{{RetryBudget: &retryBudget{
				BudgetInterval: durationpb.New(100_000_000),
			}}}},
			want: []string{"thresholds[0].retry_budget.budget_interval: not supported"},
		},
		{
			name: "invalid budget interval",
			cb: &clusterv3.CircuitBreakers{Thresholds: []*thresholds{{RetryBudget: &retryBudget{
				BudgetInterval: &durationpb.Duration{Seconds: 1, Nanos: -1},
			}}}},
			want: []string{"thresholds[0].retry_budget.budget_interval: "},
		},
		{
			name: "unknown priority",
			cb:   &clusterv3.CircuitBreakers{Thresholds: []*thresholds{{Priority: 7}}},
			want: []string{"thresholds[0].priority: unknown routing priority 7"},
		},
		{
			name: "max connection pools",
			cb:   &clusterv3.CircuitBreakers{Thresholds: []*thresholds{{MaxConnectionPools: u32(4)}}},
			want: []string{"thresholds[0].max_connection_pools: not supported"},
		},
		{
			name: "nil thresholds",
			cb:   &clusterv3.CircuitBreakers{Thresholds: []*thresholds{nil}},
			want: []string{"thresholds[0]: must be set"},
		},
		{
			name: "every error reported",
			cb: &clusterv3.CircuitBreakers{
				PerHostThresholds: []*thresholds{{}},
				Thresholds: []*thresholds{
					{Priority: -1, MaxConnectionPools: u32(1)},
					{Priority: high, RetryBudget: pct(200)},
				},
			},
			want: []string{
				"per_host_thresholds: not supported",
				"thresholds[0].priority: unknown routing priority -1",
				"thresholds[0].max_connection_pools: not supported",
				"thresholds[1].retry_budget.budget_percent.value: must be in [0,100]",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig(tc.cb)
			if err == nil {
				t.Fatalf("ParseConfig = %+v, want an error", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %q, want it to contain %q", err, w)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tc.want) {
				t.Errorf("error has %d lines, want %d:\n%v", n, len(tc.want), err)
			}
		})
	}
}

func TestProtoRoundTrip(t *testing.T) {
	for _, p := range []Priorities{
		{Defaults(), Defaults()},
		{MeshDefaults(), Defaults()},
		{{1, 2, 3, 4, &Budget{Percent: 33.3, MinConcurrency: 0}, true}, {}},
	} {
		got, err := ParseConfig(p.Proto())
		if err != nil {
			t.Fatalf("ParseConfig(%+v.Proto()): %v", p, err)
		}
		if diff := cmp.Diff(p, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}
