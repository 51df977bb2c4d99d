package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startT starts h on a loopback port, stopped at cleanup, and returns its
// base URL.
func startT(t *testing.T, h http.Handler) string {
	t.Helper()
	a, err := startApp(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		a.shutdown(ctx)
	})
	return fmt.Sprintf("http://127.0.0.1:%d", a.port())
}

func get(t *testing.T, url string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// headerEcho answers like reviews v1 and records the traceparent it got.
func headerEcho(got chan<- string) http.Handler {
	rh := reviewsHandler(ServedBy{"reviews", "reviews-9", "v1"}, 0, nil)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent")
		rh.ServeHTTP(w, r)
	})
}

func TestFrontendCombinesCatalogAndReviews(t *testing.T) {
	catalog := startT(t, catalogHandler(ServedBy{"catalog", "catalog-9", "v1"}))
	traces := make(chan string, 1)
	reviews := startT(t, headerEcho(traces))
	fe := startT(t, &frontend{self: ServedBy{"frontend", "frontend-9", "v1"}, catalog: catalog, reviews: reviews, client: &http.Client{}})

	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	resp, body := get(t, fe+"/?product=3", http.Header{"Traceparent": {tp}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", resp.Status, body)
	}
	var p Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Product != products[2] || len(p.Reviews) != 2 || p.Reviews[0].Stars != 0 {
		t.Errorf("page %+v, want product 3 with its two reviews, no stars from v1", p)
	}
	if p.ServedBy.Catalog.Instance != "catalog-9" || p.ServedBy.Reviews.Instance != "reviews-9" || p.ServedBy.Frontend.Instance != "frontend-9" {
		t.Errorf("servedBy %+v", p.ServedBy)
	}
	if v := resp.Header.Get(ReviewsVersionHeader); v != "v1" {
		t.Errorf("%s: %q, want v1", ReviewsVersionHeader, v)
	}
	if got := <-traces; got != tp {
		t.Errorf("reviews got traceparent %q, want %q", got, tp)
	}

	// In turn without ?product.
	seen := map[int]bool{}
	for range len(products) {
		_, body := get(t, fe+"/", nil)
		<-traces
		var p Page
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		seen[p.Product.ID] = true
	}
	if len(seen) != len(products) {
		t.Errorf("products served in turn: %v, want all %d", seen, len(products))
	}

	if resp, body := get(t, fe+"/?product=9", nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `product \"9\": want 1 to 4`) {
		t.Errorf("?product=9: %s %s", resp.Status, body)
	}
}

func TestFrontendNamesTheFailingUpstream(t *testing.T) {
	catalog := startT(t, catalogHandler(ServedBy{"catalog", "catalog-9", "v1"}))
	reviews := startT(t, reviewsHandler(ServedBy{"reviews", "reviews-9", "v2"}, 100, nil))
	fe := startT(t, &frontend{self: ServedBy{"frontend", "frontend-9", "v1"}, catalog: catalog, reviews: reviews, client: &http.Client{}})
	resp, body := get(t, fe+"/", nil)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "reviews: 503 Service Unavailable") || strings.Contains(body, "catalog:") {
		t.Errorf("%s %s, want a 502 naming reviews' 503", resp.Status, body)
	}
}

func TestReviewsVersions(t *testing.T) {
	v2 := startT(t, reviewsHandler(ServedBy{"reviews", "reviews-2", "v2"}, 0, nil))
	resp, body := get(t, v2+"/reviews/1", nil)
	var a ReviewsAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s %v", resp.Status, body, err)
	}
	if a.ServedBy.Version != "v2" || a.Reviews[0].Stars == 0 {
		t.Errorf("v2 answer %+v, want stars", a)
	}
	if resp, _ := get(t, v2+"/reviews/77", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown product: %s", resp.Status)
	}
}
