package ratelimit

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func tb(max, perFill uint32, every time.Duration) *typev3.TokenBucket {
	return &typev3.TokenBucket{MaxTokens: max, TokensPerFill: wrapperspb.UInt32(perFill), FillInterval: durationpb.New(every)}
}

func desc(b *typev3.TokenBucket, kv ...string) *commonrlv3.LocalRateLimitDescriptor {
	d := &commonrlv3.LocalRateLimitDescriptor{TokenBucket: b}
	for i := 0; i < len(kv); i += 2 {
		d.Entries = append(d.Entries, &commonrlv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

// descs builds request descriptors: each argument is "k=v,k=v".
func descs(ss ...string) *Descriptors {
	ds := &Descriptors{}
	for _, s := range ss {
		for kv := range strings.SplitSeq(s, ",") {
			k, v, _ := strings.Cut(kv, "=")
			ds.Entries = append(ds.Entries, Entry{k, v})
		}
		ds.Ends = append(ds.Ends, len(ds.Entries))
	}
	return ds
}

func TestLimiterDescriptors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		def, _ := NewBucket(tb(100, 100, time.Second))
		l, err := NewLimiter(def, true, []*commonrlv3.LocalRateLimitDescriptor{
			desc(tb(2, 2, time.Second), "client", "slow"),
			desc(tb(1, 1, time.Second), "client", "slow", "path", "/x"),
		})
		if err != nil {
			t.Fatal(err)
		}
		admitted := func(ds *Descriptors, n int) int {
			got := 0
			for range n {
				if ok, _ := l.Allow(ds); ok {
					got++
				}
			}
			return got
		}
		if n := admitted(descs("client=slow"), 5); n != 2 {
			t.Fatalf("client=slow admitted %d of 5, want its bucket's 2", n)
		}
		if n := admitted(descs("client=fast"), 5); n != 5 {
			t.Fatalf("an unmatched descriptor admitted %d of 5, want all (default bucket)", n)
		}
		// Entries must match whole: a longer descriptor is another one.
		time.Sleep(time.Second)
		ok, b := l.Allow(descs("client=slow,path=/x"))
		if !ok || b == def {
			t.Fatalf("first /x request: ok %v, bucket default %v", ok, b == def)
		}
		if lim, rem, reset := b.State(); lim != 1 || rem != 0 || reset != time.Second {
			t.Fatalf("matched bucket state %d %d %v, want 1 0 1s", lim, rem, reset)
		}
		if ok, _ := l.Allow(descs("client=slow,path=/x")); ok {
			t.Fatal("second /x request admitted; its descriptor holds one token a second")
		}
		// A request matching both: the most restrictive (1/s) goes first
		// and refuses before the 2/s bucket is touched.
		if n := admitted(descs("client=slow", "client=slow,path=/x"), 3); n != 0 {
			t.Fatalf("both descriptors admitted %d, want 0", n)
		}
		if n := admitted(descs("client=slow"), 3); n != 2 {
			t.Fatalf("client=slow after refusals by the stricter bucket admitted %d, want 2", n)
		}
	})
}

func TestLimiterDefaultBucket(t *testing.T) {
	tests := []struct {
		name   string
		always bool
		want   int // admitted of 5 requests matching the descriptor
		wantDf int // default bucket's remaining tokens afterwards
	}{
		{name: "always consume (Envoy's default)", always: true, want: 2, wantDf: 0},
		{name: "descriptor instead of default", always: false, want: 4, wantDf: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				def, _ := NewBucket(tb(2, 1, time.Hour))
				l, err := NewLimiter(def, tc.always, []*commonrlv3.LocalRateLimitDescriptor{desc(tb(4, 1, time.Hour), "k", "v")})
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for range 5 {
					if ok, _ := l.Allow(descs("k=v")); ok {
						n++
					}
				}
				if _, rem, _ := def.State(); n != tc.want || rem != int64(tc.wantDf) {
					t.Fatalf("admitted %d, default has %d left; want %d and %d", n, rem, tc.want, tc.wantDf)
				}
			})
		})
	}
}

func TestLimiterNoDefault(t *testing.T) {
	l, err := NewLimiter(nil, true, []*commonrlv3.LocalRateLimitDescriptor{desc(tb(1, 1, time.Hour), "k", "v")})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if ok, b := l.Allow(descs("k=other")); !ok || b != nil {
			t.Fatalf("unmatched request without a default bucket: ok %v bucket %v", ok, b)
		}
	}
	if ok, _ := l.Allow(descs("k=v")); !ok {
		t.Fatal("first matched request refused")
	}
	if ok, _ := l.Allow(descs("k=v")); ok {
		t.Fatal("second matched request admitted")
	}
}

func TestLimiterErrors(t *testing.T) {
	tests := []struct {
		name string
		ds   []*commonrlv3.LocalRateLimitDescriptor
		want string
	}{
		{name: "no entries", ds: []*commonrlv3.LocalRateLimitDescriptor{desc(tb(1, 1, time.Second))}, want: "descriptors[0].entries: at least one"},
		{name: "wildcard", ds: []*commonrlv3.LocalRateLimitDescriptor{desc(tb(1, 1, time.Second), "k", "")}, want: "descriptors[0].entries[0].value: required"},
		{name: "no bucket", ds: []*commonrlv3.LocalRateLimitDescriptor{desc(nil, "k", "v")}, want: "descriptors[0].token_bucket: required"},
		{name: "duplicate", ds: []*commonrlv3.LocalRateLimitDescriptor{desc(tb(1, 1, time.Second), "k", "v"), desc(tb(2, 1, time.Second), "k", "v")}, want: "descriptors[1].entries: the same entries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewLimiter(nil, true, tc.ds)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// BenchmarkLimiterAllow matches two request descriptors against eight
// configured ones, as a request through a descriptor-heavy filter does.
func BenchmarkLimiterAllow(b *testing.B) {
	var cfg []*commonrlv3.LocalRateLimitDescriptor
	for _, c := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		cfg = append(cfg, desc(tb(1<<30, 1<<30, time.Second), "client", c, "path", "/api"))
	}
	def, _ := NewBucket(tb(1<<30, 1<<30, time.Second))
	l, err := NewLimiter(def, true, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ds := descs("client=g,path=/api", "client=zzz")
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := l.Allow(ds); !ok {
			b.Fatal("refused")
		}
	}
}

func TestPerConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPerConnection(func() *Limiter {
			b, _ := NewBucket(tb(1, 1, time.Second))
			l, _ := NewLimiter(b, true, nil)
			return l
		})
		if ok, _ := p.For("a:1").Allow(nil); !ok {
			t.Fatal("first request on a:1 refused")
		}
		if ok, _ := p.For("a:1").Allow(nil); ok {
			t.Fatal("second request on a:1 admitted; its bucket holds one token")
		}
		if ok, _ := p.For("a:2").Allow(nil); !ok {
			t.Fatal("another connection shares a:1's bucket")
		}
		// Above sweepAbove connections, the limiters that are full again
		// are forgotten; a drained one is kept.
		time.Sleep(time.Second)
		p.For("a:1").Allow(nil) // refilled, drained again; a:2 is full
		for i := range sweepAbove {
			p.For(fmt.Sprint("b:", i))
		}
		// The sweep ran when b:1022 came (1024 tracked) and kept only a:1.
		if n := p.Len(); n != 3 {
			t.Fatalf("after the sweep %d connections are tracked, want 3 (a:1, b:1022, b:1023)", n)
		}
		if ok, _ := p.For("a:1").Allow(nil); ok {
			t.Fatal("the sweep forgot a:1's drained bucket")
		}
	})
}
