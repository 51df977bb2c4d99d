package demo

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoadGenCountsAndSumsUp(t *testing.T) {
	var n atomic.Int64
	url := startT(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch i := n.Add(1); {
		case i%10 == 0:
			http.Error(w, "down", http.StatusServiceUnavailable)
		case i%10 == 5:
			w.Header().Set(ReviewsVersionHeader, "v2")
		default:
			w.Header().Set(ReviewsVersionHeader, "v1")
		}
	}))
	lg := newLoadGen(url+"/", 200)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { lg.run(ctx, nil, 0); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for n.Load() < 40 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling the server's count
	}
	cancel()
	<-done
	line := lg.summary(time.Second)
	m := regexp.MustCompile(`^load: (\d+) requests in 1s, (\d+) ok, (\d+) failed; reviews v1 (\d+), v2 (\d+) \(last failure: 503 Service Unavailable: down\)$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("summary %q", line)
	}
	atoi := func(s string) int { v, _ := strconv.Atoi(s); return v }
	total, ok, failed, v1, v2 := atoi(m[1]), atoi(m[2]), atoi(m[3]), atoi(m[4]), atoi(m[5])
	if total < 40 || total != ok+failed || ok != v1+v2 || failed == 0 || v2 == 0 || int64(total) > n.Load() {
		t.Errorf("summary %q after %d requests served", line, n.Load())
	}
	if line := lg.summary(time.Second); line != "load: 0 requests in 1s, 0 ok, 0 failed" {
		t.Errorf("second summary %q, want a fresh window", line)
	}
}

func TestLoadGenBoundsConcurrency(t *testing.T) {
	var inFlight, most atomic.Int64
	release := make(chan struct{})
	url := startT(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if c <= m || most.CompareAndSwap(m, c) {
				break
			}
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	lg := newLoadGen(url+"/", 200)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { lg.run(ctx, nil, 0); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for inFlight.Load() < maxInFlight && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling the server's count
	}
	// Ticks keep coming while all are stuck: none may be added.
	for time.Now().Before(deadline) {
		lg.mu.Lock()
		skipped := lg.skipped
		lg.mu.Unlock()
		if skipped >= 20 {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling the generator's count
	}
	line := lg.summary(time.Second)
	close(release)
	cancel()
	<-done
	if m := most.Load(); m != maxInFlight {
		t.Errorf("at most %d requests in flight, want %d", m, maxInFlight)
	}
	if !regexp.MustCompile(`; \d+ not sent, 8 already in flight$`).MatchString(line) {
		t.Errorf("summary %q does not say requests were not sent", line)
	}
}
