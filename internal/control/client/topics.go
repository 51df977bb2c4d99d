package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/trellis-mesh/trellis/internal/control/telemetry"
)

// Topics returns the messaging metrics per broker and topic a query
// selects (GET /api/v1/stats?kind=topic): q.Name is a topic or NATS
// subject, q.From a broker; q.Kind is ignored.
func (c *Client) Topics(ctx context.Context, q StatsQuery) (telemetry.TopicResult, error) {
	v := url.Values{"kind": {telemetry.KindTopicName}}
	for k, s := range map[string]string{"mesh": q.Mesh, "name": q.Name, "from": q.From} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Window != 0 {
		v.Set("window", q.Window.String())
	}
	var out telemetry.TopicResult
	err := c.do(ctx, http.MethodGet, "/api/v1/stats", v, nil, &out)
	return out, err
}
