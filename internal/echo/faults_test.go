package echo

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// post calls the fault API and returns the faults it answers.
func post(t *testing.T, s *Server, pathQuery string) (int, faultsJSON) {
	t.Helper()
	resp, err := http.Post("http://"+s.Addr()+pathQuery, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var f faultsJSON
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, f
}

func TestFaultsFailAndRecover(t *testing.T) {
	s := startServer(t, Options{})
	for _, c := range clients(t, s) {
		t.Run(c.name, func(t *testing.T) {
			if code, f := post(t, s, "/_echo/fail?ratio=1&status=502"); code != 200 || f.FailRatio != 1 || f.FailStatus != 502 {
				t.Fatalf("fail: %d %+v", code, f)
			}
			for _, path := range []string{"/x", "/healthz"} {
				if resp, body := c.get(t, path); resp.StatusCode != 502 || !strings.Contains(string(body), "injected failure") {
					t.Fatalf("%s while failing: %d %q", path, resp.StatusCode, body)
				}
			}
			// The stats and the API itself are never affected.
			if resp, _ := c.get(t, "/echo/stats"); resp.StatusCode != 200 {
				t.Fatalf("stats while failing: %d", resp.StatusCode)
			}
			if code, f := post(t, s, "/_echo/recover"); code != 200 || f != (faultsJSON{FailStatus: 503, Delay: "0s"}) {
				t.Fatalf("recover: %d %+v", code, f)
			}
			if resp, _ := c.get(t, "/x"); resp.StatusCode != 200 {
				t.Fatalf("after recover: %d", resp.StatusCode)
			}
		})
	}
}

func TestFaultsFailHalf(t *testing.T) {
	s := startServer(t, Options{})
	if err := s.SetFaults(Faults{FailRatio: 0.5}); err != nil {
		t.Fatal(err)
	}
	c := clients(t, s)[0]
	failed := 0
	const n = 400
	for range n {
		if resp, _ := c.get(t, "/"); resp.StatusCode == 503 {
			failed++
		}
	}
	// Binomial(400, 0.5): 200 ± 10; 140..260 is six standard deviations.
	if failed < 140 || failed > 260 {
		t.Fatalf("%d of %d failed, want about half", failed, n)
	}
}

func TestFaultsResetSlowHang(t *testing.T) {
	s := startServer(t, Options{})
	for _, c := range clients(t, s) {
		t.Run(c.name, func(t *testing.T) {
			post(t, s, "/_echo/reset")
			if _, err := c.Get(c.base + "/"); err == nil {
				t.Fatal("a request got an answer while every request is reset")
			}
			post(t, s, "/_echo/recover")

			post(t, s, "/_echo/slow?delay=200ms")
			start := time.Now()
			if resp, _ := c.get(t, "/"); resp.StatusCode != 200 || time.Since(start) < 200*time.Millisecond {
				t.Fatalf("slow: %d after %v", resp.StatusCode, time.Since(start))
			}
			post(t, s, "/_echo/recover")

			post(t, s, "/_echo/hang")
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/", nil)
			if _, err := c.Do(req); err == nil {
				t.Fatal("a request was answered while the server hangs")
			}
			cancel()
			// A held request is released by recover.
			before := s.Stats().Requests
			done := make(chan int, 1)
			go func() {
				resp, err := c.Get(c.base + "/")
				if err != nil {
					done <- 0
					return
				}
				resp.Body.Close()
				done <- resp.StatusCode
			}()
			deadline := time.Now().Add(10 * time.Second)
			for s.Stats().Requests == before { // arrived (and counted) before it is held
				if time.Now().After(deadline) {
					t.Fatal("the request never arrived")
				}
				time.Sleep(5 * time.Millisecond)
			}
			select {
			case code := <-done:
				t.Fatalf("answered %d while the server hangs", code)
			default:
			}
			post(t, s, "/_echo/recover")
			select {
			case code := <-done:
				if code != 200 {
					t.Fatalf("released request: %d", code)
				}
				return
			case <-time.After(10 * time.Second):
			}
			t.Fatal("the held request was never answered")
		})
	}
}

func TestFaultsAPIErrors(t *testing.T) {
	s := startServer(t, Options{})
	for _, pq := range []string{"/_echo/fail?ratio=2", "/_echo/fail?status=99", "/_echo/slow?delay=x", "/_echo/reset?ratio=-1"} {
		if code, _ := post(t, s, pq); code != 400 {
			t.Errorf("%s: %d, want 400", pq, code)
		}
	}
	if code, _ := post(t, s, "/_echo/nope"); code != 404 {
		t.Errorf("unknown path: %d, want 404", code)
	}
	resp, err := http.Get("http://" + s.Addr() + "/_echo/fail")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET /_echo/fail: %d, want 405", resp.StatusCode)
	}
}
