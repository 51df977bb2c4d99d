package ratelimit

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBucket(&typev3.TokenBucket{MaxTokens: 3, TokensPerFill: wrapperspb.UInt32(2), FillInterval: durationpb.New(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		count := func() int {
			n := 0
			for b.Allow() {
				n++
			}
			return n
		}
		if n := count(); n != 3 {
			t.Fatalf("full bucket admitted %d, want 3", n)
		}
		time.Sleep(999 * time.Millisecond)
		if b.Allow() {
			t.Fatal("admitted before the fill interval")
		}
		time.Sleep(time.Millisecond)
		if n := count(); n != 2 {
			t.Fatalf("one fill admitted %d, want tokens_per_fill 2", n)
		}
		time.Sleep(10 * time.Second)
		if n := count(); n != 3 {
			t.Fatalf("many fills admitted %d, want max_tokens 3", n)
		}
	})
}

func TestBucketErrors(t *testing.T) {
	tests := []struct {
		name string
		tb   *typev3.TokenBucket
		want string
	}{
		{name: "missing", tb: nil, want: "token_bucket: required"},
		{name: "no tokens", tb: &typev3.TokenBucket{FillInterval: durationpb.New(time.Second)}, want: "token_bucket.max_tokens: must be > 0"},
		{name: "no interval", tb: &typev3.TokenBucket{MaxTokens: 1}, want: "token_bucket.fill_interval: must be > 0"},
		{name: "zero per fill", tb: &typev3.TokenBucket{MaxTokens: 1, TokensPerFill: wrapperspb.UInt32(0), FillInterval: durationpb.New(time.Second)}, want: "token_bucket.tokens_per_fill: must be > 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewBucket(tc.tb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func BenchmarkAllow(b *testing.B) {
	bk, _ := NewBucket(&typev3.TokenBucket{MaxTokens: 1 << 30, FillInterval: durationpb.New(time.Second)})
	b.ReportAllocs()
	for b.Loop() {
		bk.Allow()
	}
}
