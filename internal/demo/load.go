package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// maxInFlight bounds the load generator's concurrent requests: when the
// mesh is slow, ticks are skipped rather than piled up.
const maxInFlight = 8

// loadGen sends GET url at a steady rate and counts the answers by the
// version of reviews that served them.
type loadGen struct {
	url    string
	rate   float64 // requests per second, > 0
	client *http.Client

	mu       sync.Mutex
	ok, fail int
	skipped  int // ticks without a request: maxInFlight were in flight
	versions map[string]int
	lastErr  string
}

func newLoadGen(url string, rate float64) *loadGen {
	return &loadGen{
		url: url, rate: rate, versions: map[string]int{},
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: maxInFlight}},
	}
}

// run sends requests until ctx ends and, every reportEvery (if > 0),
// writes a summary of the window to out. It returns when every request
// it started has finished.
func (l *loadGen) run(ctx context.Context, out io.Writer, reportEvery time.Duration) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / l.rate))
	defer tick.Stop()
	var report <-chan time.Time
	if reportEvery > 0 {
		t := time.NewTicker(reportEvery)
		defer t.Stop()
		report = t.C
	}
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.client.CloseIdleConnections()
	for {
		select {
		case <-ctx.Done():
			return
		case <-report:
			fmt.Fprintln(out, l.summary(reportEvery))
		case <-tick.C:
			select {
			case sem <- struct{}{}:
			default:
				l.mu.Lock()
				l.skipped++
				l.mu.Unlock()
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				l.once(ctx)
			})
		}
	}
}

// once sends one request and counts its outcome; a request cut short by
// the end of ctx is not counted.
func (l *loadGen) once(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url, nil)
	if err != nil {
		l.count("", err.Error())
		return
	}
	resp, err := l.client.Do(req)
	if ctx.Err() != nil {
		if err == nil {
			resp.Body.Close()
		}
		return
	}
	if err != nil {
		l.count("", err.Error())
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		l.count("", fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body))))
		return
	}
	l.count(resp.Header.Get(ReviewsVersionHeader), "")
}

func (l *loadGen) count(version, errText string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if errText != "" {
		l.fail++
		l.lastErr = errText
		return
	}
	l.ok++
	l.versions[version]++
}

// summary returns the window's counts as one line and starts a new window.
func (l *loadGen) summary(window time.Duration) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "load: %d requests in %s, %d ok, %d failed", l.ok+l.fail, window, l.ok, l.fail)
	if len(l.versions) > 0 {
		vs := make([]string, 0, len(l.versions))
		for v := range l.versions {
			vs = append(vs, v)
		}
		sort.Strings(vs)
		b.WriteString("; reviews")
		for i, v := range vs {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %s %d", v, l.versions[v])
		}
	}
	if l.fail > 0 {
		fmt.Fprintf(&b, " (last failure: %s)", l.lastErr)
	}
	if l.skipped > 0 {
		fmt.Fprintf(&b, "; %d not sent, %d already in flight", l.skipped, maxInFlight)
	}
	l.ok, l.fail, l.skipped, l.lastErr = 0, 0, 0, ""
	clear(l.versions)
	return b.String()
}
