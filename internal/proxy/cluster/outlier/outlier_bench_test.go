package outlier

import "testing"

// BenchmarkReport is the router's per-attempt call: a success.
func BenchmarkReport(b *testing.B) {
	e := newEnv(testConfig(), 16)
	h := e.hosts[3]
	b.ReportAllocs()
	for b.Loop() {
		e.d.Report(h, HTTPStatus, 200)
	}
}

// BenchmarkReportMixed alternates successes, 5xx and local-origin events
// with split_external_local_origin_errors on, below every threshold.
func BenchmarkReportMixed(b *testing.B) {
	cfg := testConfig()
	cfg.SplitExternalLocalOriginErrors = true
	e := newEnv(cfg, 16)
	h := e.hosts[3]
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		switch i & 3 {
		case 0:
			e.d.Report(h, ConnectSuccess, 0)
		case 1:
			e.d.Report(h, HTTPStatus, 503)
		case 2:
			e.d.Report(h, Timeout, 0)
		default:
			e.d.Report(h, HTTPStatus, 200)
		}
		i++
	}
}

// BenchmarkReportParallel reports successes from all Ps to 16 hosts.
func BenchmarkReportParallel(b *testing.B) {
	e := newEnv(testConfig(), 16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			e.d.Report(e.hosts[i&15], HTTPStatus, 200)
			i++
		}
	})
}
