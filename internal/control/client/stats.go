package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/trellis-mesh/trellis/internal/control/telemetry"
)

// StatsQuery selects golden metrics (GET /api/v1/stats). Empty fields are
// left out: kind service, every mesh and name, the server's window.
type StatsQuery struct {
	Kind, Mesh, Name, From string
	Window                 time.Duration
}

// Stats returns the golden metrics a query selects.
func (c *Client) Stats(ctx context.Context, q StatsQuery) (telemetry.Result, error) {
	v := url.Values{}
	for k, s := range map[string]string{"kind": q.Kind, "mesh": q.Mesh, "name": q.Name, "from": q.From} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Window != 0 {
		v.Set("window", q.Window.String())
	}
	var out telemetry.Result
	err := c.do(ctx, http.MethodGet, "/api/v1/stats", v, nil, &out)
	return out, err
}

// Edges returns who talks to whom over window (0: the server's default)
// in mesh ("" for every mesh).
func (c *Client) Edges(ctx context.Context, mesh string, window time.Duration) (telemetry.EdgeResult, error) {
	v := url.Values{}
	if mesh != "" {
		v.Set("mesh", mesh)
	}
	if window != 0 {
		v.Set("window", window.String())
	}
	var out telemetry.EdgeResult
	err := c.do(ctx, http.MethodGet, "/api/v1/edges", v, nil, &out)
	return out, err
}
