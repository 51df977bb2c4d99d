package bridgefilter

import (
	"errors"
	"log/slog"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/bridge"
	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// Builder makes bridge filters. Its typed_config type is TypedStruct:
// it claims every TypedStruct HTTP filter and refuses those of another
// type_url.
type Builder struct {
	// Metrics is the proxy's registry: the bridge runtime lives beside it
	// and registers the trellis_bridge_* metrics on it. Nil: every Build
	// makes a runtime of its own (tests only).
	Metrics *metrics.Registry
	// Log receives the bridge's problems. Nil: slog.Default().
	Log *slog.Logger
}

var _ httpfilter.Builder = Builder{}

// TypeURL is the TypedStruct's type URL.
func (Builder) TypeURL() string { return "type.googleapis.com/xds.type.v3.TypedStruct" }

// Build parses the configuration and hands it to the proxy's bridge
// runtime (Bridge.Update: unchanged consumers keep running).
func (b Builder) Build(_ string, a *anypb.Any) (httpfilter.Filter, error) {
	ts := &xdstypev3.TypedStruct{}
	if err := a.UnmarshalTo(ts); err != nil {
		return nil, err
	}
	cfg, err := Parse(ts)
	if err != nil {
		return nil, err
	}
	rt := b.runtime()
	if err := rt.Update(cfg); err != nil {
		return nil, err
	}
	return filter{rt}, nil
}

// ParseOverride: the bridge has no per-route configuration.
func (Builder) ParseOverride(*anypb.Any) (any, error) {
	return nil, errors.New("the bridge filter takes no per-route configuration")
}

// Runtime returns the proxy's bridge runtime (made on first use).
func (b Builder) Runtime() *bridge.Bridge { return b.runtime() }

func (b Builder) runtime() *bridge.Bridge {
	log := b.Log
	if log == nil {
		log = slog.Default()
	}
	if b.Metrics == nil {
		return bridge.New(bridge.Options{Log: log})
	}
	h := &holder{}
	if err := b.Metrics.Prom.Register(h); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*holder); ok {
				return existing.b
			}
		}
		panic(err) // a programmer error: another collector took the name
	}
	h.b = bridge.New(bridge.Options{Registerer: b.Metrics.Prom, Log: log})
	return h.b
}

// holder keeps a proxy's bridge runtime in its registry, exporting the
// number of subscriptions it runs.
type holder struct{ b *bridge.Bridge }

var subscriptionsDesc = prometheus.NewDesc("trellis_bridge_subscriptions", "Subscriptions the bridge runs.", nil, nil)

func (h *holder) Describe(ch chan<- *prometheus.Desc) { ch <- subscriptionsDesc }

func (h *holder) Collect(ch chan<- prometheus.Metric) {
	n := 0
	if h.b != nil {
		n = h.b.Subscriptions()
	}
	ch <- prometheus.MustNewConstMetric(subscriptionsDesc, prometheus.GaugeValue, float64(n))
}

// filter answers every request with the bridge.
type filter struct{ b *bridge.Bridge }

func (f filter) Wrap(httpfilter.Handler) httpfilter.Handler {
	return httpfilter.HandlerFunc(func(req *httpfilter.Request) error {
		f.b.ServeHTTP(req.W, req.R)
		return nil
	})
}
