package translator

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

func TestMergePolicy(t *testing.T) {
	mesh := v1alpha1.PolicySpec{
		Retry:       &v1alpha1.Retry{Attempts: u32(2), On: []string{"5xx"}, Budget: &v1alpha1.RetryBudget{Percent: u32(20), MinConcurrency: u32(3)}},
		HealthCheck: &v1alpha1.HealthCheck{Interval: dur(time.Second), HTTP: &v1alpha1.HTTPHealthCheck{Path: "/healthz"}},
		Timeouts:    &v1alpha1.Timeouts{Connect: dur(time.Second)},
	}
	before := clonePolicyForTest(mesh)
	svc := v1alpha1.PolicySpec{
		Retry:       &v1alpha1.Retry{Attempts: u32(5), Budget: &v1alpha1.RetryBudget{Percent: u32(50)}},
		HealthCheck: &v1alpha1.HealthCheck{GRPC: &v1alpha1.GRPCHealthCheck{}},
		Timeouts:    &v1alpha1.Timeouts{Connect: dur(3 * time.Second)},
	}
	got := mesh
	mergePolicy(&got, &svc)
	want := v1alpha1.PolicySpec{
		Retry:       &v1alpha1.Retry{Attempts: u32(5), On: []string{"5xx"}, Budget: &v1alpha1.RetryBudget{Percent: u32(50), MinConcurrency: u32(3)}},
		HealthCheck: &v1alpha1.HealthCheck{Interval: dur(time.Second), GRPC: &v1alpha1.GRPCHealthCheck{}},
		Timeouts:    &v1alpha1.Timeouts{Connect: dur(3 * time.Second)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged policy (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, mesh); diff != "" {
		t.Errorf("merging changed the lower layer (-before +after):\n%s", diff)
	}
}

// clonePolicyForTest deep-copies the parts of p that TestMergePolicy sets.
func clonePolicyForTest(p v1alpha1.PolicySpec) v1alpha1.PolicySpec {
	r := *p.Retry
	b := *r.Budget
	r.Budget = &b
	r.On = append([]string(nil), r.On...)
	hc := *p.HealthCheck
	h := *hc.HTTP
	hc.HTTP = &h
	to := *p.Timeouts
	return v1alpha1.PolicySpec{Retry: &r, HealthCheck: &hc, Timeouts: &to}
}
