package traceparent

import (
	"regexp"
	"testing"
)

var valid = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)

func TestAppend(t *testing.T) {
	seen := map[string]bool{}
	for _, sampled := range []bool{true, false} {
		for range 100 {
			v := string(Append([]byte("x:"), sampled))[2:]
			if len(v) != Len || !valid.MatchString(v) {
				t.Fatalf("%q is not a traceparent value of %d bytes", v, Len)
			}
			if want := map[bool]string{true: "-01", false: "-00"}[sampled]; v[52:] != want {
				t.Fatalf("%q: flags %q, want %q", v, v[52:], want)
			}
			if v[3:35] == "00000000000000000000000000000000" || v[36:52] == "0000000000000000" {
				t.Fatalf("%q has an all-zero id", v)
			}
			if seen[v[3:35]] {
				t.Fatalf("trace id %s repeated", v[3:35])
			}
			seen[v[3:35]] = true
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 64)
	for b.Loop() {
		buf = Append(buf[:0], true)
	}
}
