package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the demo's application: a frontend that calls catalog and
// reviews through its sidecar's outbound ports and combines their answers,
// and the two backends. Each is a plain HTTP server on loopback; none knows
// about the mesh beyond the local ports it calls.

// ServedBy names the instance that answered, in every answer of the app.
type ServedBy struct {
	Service  string `json:"service"`
	Instance string `json:"instance"`
	Version  string `json:"version"`
}

// Product is one item of the catalog.
type Product struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Price string `json:"price"`
}

// Review is one review of a product; Stars is set by reviews v2 only.
type Review struct {
	Reviewer string `json:"reviewer"`
	Text     string `json:"text"`
	Stars    int    `json:"stars,omitempty"`
}

// CatalogAnswer is catalog's answer to GET /products/{id}.
type CatalogAnswer struct {
	Product  Product  `json:"product"`
	ServedBy ServedBy `json:"servedBy"`
}

// ReviewsAnswer is reviews' answer to GET /reviews/{id}.
type ReviewsAnswer struct {
	Product  int      `json:"product"`
	Reviews  []Review `json:"reviews"`
	ServedBy ServedBy `json:"servedBy"`
}

// Page is the frontend's answer to GET /: a product with its reviews and
// who served each part.
type Page struct {
	Product  Product  `json:"product"`
	Reviews  []Review `json:"reviews"`
	ServedBy struct {
		Frontend ServedBy `json:"frontend"`
		Catalog  ServedBy `json:"catalog"`
		Reviews  ServedBy `json:"reviews"`
	} `json:"servedBy"`
}

// ReviewsVersionHeader is the frontend's response header naming the
// version of reviews that answered, for counting the canary split with
// curl.
const ReviewsVersionHeader = "X-Demo-Reviews-Version"

var products = []Product{
	{1, "Trellis, 2 m, cedar", "49.00"},
	{2, "Climbing rose 'New Dawn'", "18.50"},
	{3, "Clematis 'Nelly Moser'", "14.90"},
	{4, "Garden twine, 100 m", "4.20"},
}

var productReviews = map[int][]Review{
	1: {{"ana", "Sturdy, went up in an hour.", 5}, {"bo", "Wood needed oiling first.", 3}},
	2: {{"chen", "Flowered the first summer.", 5}},
	3: {{"dara", "Pale pink, lovely on the trellis.", 4}, {"eli", "Slow to start.", 3}},
	4: {{"finn", "It is twine.", 4}},
}

// catalogHandler serves GET /products and GET /products/{id}.
func catalogHandler(self ServedBy) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /products", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"products": products, "servedBy": self})
	})
	mux.HandleFunc("GET /products/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || id < 1 || id > len(products) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no product %q", r.PathValue("id"))})
			return
		}
		writeJSON(w, http.StatusOK, CatalogAnswer{Product: products[id-1], ServedBy: self})
	})
	return mux
}

// reviewsHandler serves GET /reviews/{id}. Version v2 adds star ratings,
// takes a little longer, and answers 503 to failPercent of its requests
// (the retries of the demo's TrafficPolicy hide those from the frontend).
// Every answered read is passed to viewed, when not nil (the demo
// publishes it as a reviews.viewed event).
func reviewsHandler(self ServedBy, failPercent float64, viewed func(ReviewViewed)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /reviews/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || productReviews[id] == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no reviews of product %q", r.PathValue("id"))})
			return
		}
		if failPercent > 0 && rand.Float64()*100 < failPercent {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "reviews " + self.Version + ": simulated failure"})
			return
		}
		rs := make([]Review, len(productReviews[id]))
		copy(rs, productReviews[id])
		if self.Version == "v1" {
			for i := range rs {
				rs[i].Stars = 0
			}
		} else {
			// v2 looks the stars up somewhere slower.
			select {
			case <-time.After(time.Duration(5+rand.IntN(20)) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		writeJSON(w, http.StatusOK, ReviewsAnswer{Product: id, Reviews: rs, ServedBy: self})
		if viewed != nil {
			viewed(ReviewViewed{Product: id, Reviews: len(rs), Instance: self.Instance, Version: self.Version})
		}
	})
	return mux
}

// frontend serves GET / (a Page, product by ?product=ID or in turn) by
// calling catalog and reviews at the given base URLs, its sidecar's
// outbound ports.
type frontend struct {
	self             ServedBy
	catalog, reviews string
	client           *http.Client
	next             atomic.Uint64
}

// propagated are the request headers the frontend copies to its calls, so
// a trace or request id spans the whole request.
var propagated = []string{
	"traceparent", "tracestate", "baggage", "x-request-id",
	"b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",
}

func (f *frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "the frontend serves GET /"})
		return
	}
	id := int(f.next.Add(1)-1)%len(products) + 1
	if s := r.URL.Query().Get("product"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > len(products) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("product %q: want 1 to %d", s, len(products))})
			return
		}
		id = n
	}
	var (
		cat        CatalogAnswer
		rev        ReviewsAnswer
		catErr     error
		revErr     error
		wg         sync.WaitGroup
		productURL = fmt.Sprintf("%s/products/%d", f.catalog, id)
		reviewsURL = fmt.Sprintf("%s/reviews/%d", f.reviews, id)
	)
	wg.Go(func() { catErr = f.call(r, "catalog", productURL, &cat) })
	wg.Go(func() { revErr = f.call(r, "reviews", reviewsURL, &rev) })
	wg.Wait()
	if err := errors.Join(catErr, revErr); err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error(), "servedBy": f.self.Instance})
		return
	}
	var p Page
	p.Product, p.Reviews = cat.Product, rev.Reviews
	p.ServedBy.Frontend, p.ServedBy.Catalog, p.ServedBy.Reviews = f.self, cat.ServedBy, rev.ServedBy
	w.Header().Set(ReviewsVersionHeader, rev.ServedBy.Version)
	writeJSON(w, http.StatusOK, p)
}

// call GETs url of service with the propagated headers of r and decodes
// the JSON answer into out. Errors name the service.
func (f *frontend) call(r *http.Request, service, url string, out any) error {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", service, err)
	}
	for _, h := range propagated {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[http.CanonicalHeaderKey(h)] = v
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", service, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", service, err)
	}
	if resp.StatusCode != http.StatusOK {
		reason := strings.TrimSpace(string(body))
		if rr := resp.Header.Get("x-trellis-reason"); rr != "" {
			reason = rr
		}
		return fmt.Errorf("%s: %s: %s", service, resp.Status, reason)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: answer: %w", service, err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

// appServer is one running instance of the application.
type appServer struct {
	srv   *http.Server
	ln    net.Listener
	close func() // when not nil, called once the server has stopped
}

// startApp serves h on a free loopback port.
func startApp(h http.Handler) (*appServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &appServer{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln: ln}
	go a.srv.Serve(ln)
	return a, nil
}

// port is the port the instance listens on.
func (a *appServer) port() int { return a.ln.Addr().(*net.TCPAddr).Port }

// shutdown stops the instance, finishing requests in flight within ctx.
func (a *appServer) shutdown(ctx context.Context) {
	if a.srv.Shutdown(ctx) != nil {
		a.srv.Close()
	}
	if a.close != nil {
		a.close()
	}
}
