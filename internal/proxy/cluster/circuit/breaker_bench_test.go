package circuit

import "testing"

// BenchmarkAcquireRelease measures an admitted Acquire and its Release,
// with a fixed retry limit and with a budget. It must report 0 allocs/op.
func BenchmarkAcquireRelease(b *testing.B) {
	cases := []struct {
		name string
		t    Thresholds
		r    Resource
	}{
		{"Request", Defaults(), Requests},
		{"Retry", Defaults(), Retries},
		{"RetryBudget", MeshDefaults(), Retries},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			br := New(tc.t, nil)
			b.ReportAllocs()
			for b.Loop() {
				if br.Acquire(tc.r) {
					br.Release(tc.r)
				}
			}
		})
	}
}

// BenchmarkOverflow measures a refused Acquire (counted, no Metrics).
func BenchmarkOverflow(b *testing.B) {
	br := New(Thresholds{}, nil)
	b.ReportAllocs()
	for b.Loop() {
		br.AcquireRequest()
	}
}

// BenchmarkAcquireReleaseParallel measures contention: every goroutine
// takes a request and, with a budget, a retry.
func BenchmarkAcquireReleaseParallel(b *testing.B) {
	br := New(MeshDefaults(), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if br.AcquireRequest() {
				if br.AcquireRetry() {
					br.ReleaseRetry()
				}
				br.ReleaseRequest()
			}
		}
	})
}
