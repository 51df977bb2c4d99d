package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/internal/control/server"
)

// HealthAnswer is the answer of GET /api/v1/health with what the HTTP
// exchange itself says.
type HealthAnswer struct {
	server.Health
	// Status is the HTTP status: 200 healthy, 503 with a body telling
	// what is not.
	Status int
	// Date is the answer's Date header (zero if absent), and Sent and
	// Received when the request left and the answer arrived, for clock
	// comparisons.
	Date, Sent, Received time.Time
}

// Server returns the API URL the client talks to.
func (c *Client) Server() string { return c.base.String() }

// Health asks the control plane for its health. A 200 or 503 with a
// health body is an answer; any other status is an *APIError (401 for a
// token the API refuses) and a failed exchange a connection error.
func (c *Client) Health(ctx context.Context) (HealthAnswer, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/health"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return HealthAnswer{}, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	a := HealthAnswer{Sent: time.Now()}
	resp, err := c.http.Do(req)
	if err != nil {
		return a, c.connError(err)
	}
	defer resp.Body.Close()
	a.Received, a.Status = time.Now(), resp.StatusCode
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		a.Date = d
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return a, fmt.Errorf("control plane at %s: %w", c.base.Host, err)
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable {
		if err := json.Unmarshal(data, &a.Health); err == nil && a.Replica != "" {
			return a, nil
		}
	}
	e := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(data, &e.ErrorResponse) != nil || e.ErrorResponse.Error == "" {
		e.ErrorResponse.Error = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	return a, e
}
