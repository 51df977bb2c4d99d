package bridgefilter

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/bridge"
	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
)

// Builder makes bridge filters.
type Builder struct {
	// Pending gathers the configuration of the proxy configuration being
	// built; nil: the filter is parsed and checked only, and answers 503
	// (validation without a running proxy).
	Pending *Pending
}

var _ httpfilter.Builder = Builder{}

// TypeURL is the type_url inside the TypedStruct (the HTTP filter
// registry looks TypedStruct filters up by it).
func (Builder) TypeURL() string { return TypeURL }

// Build parses and checks the configuration and records it in Pending.
// It starts nothing: the proxy hands the configuration to its runtime once
// the whole update is accepted (Pending).
func (b Builder) Build(name string, a *anypb.Any) (httpfilter.Filter, error) {
	ts := &xdstypev3.TypedStruct{}
	if err := a.UnmarshalTo(ts); err != nil {
		return nil, err
	}
	cfg, err := Parse(ts)
	if err != nil {
		return nil, err
	}
	if b.Pending == nil {
		return filter{}, nil
	}
	if err := b.Pending.add(name, cfg); err != nil {
		return nil, err
	}
	return filter{b.Pending.Runtime}, nil
}

// ParseOverride: the bridge has no per-route configuration.
func (Builder) ParseOverride(*anypb.Any) (any, error) {
	return nil, errors.New("the bridge filter takes no per-route configuration")
}

// Pending collects the bridge configuration of one proxy configuration
// while its listeners are built. A proxy runs one bridge runtime, which
// outlives configurations (identical updates keep its consumers running);
// after the whole configuration is accepted the proxy calls
// Runtime.Update(Config()): a refused update changes nothing, and one
// without a bridge filter stops the subscriptions.
type Pending struct {
	// Runtime is the proxy's bridge; the filters built serve with it.
	Runtime *bridge.Bridge

	mu    sync.Mutex
	cfg   *bridge.Config
	owner string
}

// NewPending starts the collection of a configuration for rt.
func NewPending(rt *bridge.Bridge) *Pending { return &Pending{Runtime: rt} }

// add records the configuration of one bridge filter. Several filters may
// carry it (one listener built twice, or the same bridge on two
// listeners); different configurations are refused: a proxy runs one
// bridge.
func (p *Pending) add(name string, cfg bridge.Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg != nil && !reflect.DeepEqual(*p.cfg, cfg) {
		return fmt.Errorf("a proxy runs one bridge: filter %q carries another configuration than filter %q", name, p.owner)
	}
	p.cfg, p.owner = &cfg, name
	return nil
}

// Config is the configuration collected; the zero Config (no brokers, no
// subscriptions) when no filter carried one.
func (p *Pending) Config() bridge.Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg == nil {
		return bridge.Config{}
	}
	return *p.cfg
}

// SubscriptionsCollector exports the number of subscriptions rt runs as
// trellis_bridge_subscriptions.
func SubscriptionsCollector(rt *bridge.Bridge) prometheus.Collector { return holder{rt} }

type holder struct{ b *bridge.Bridge }

var subscriptionsDesc = prometheus.NewDesc("trellis_bridge_subscriptions", "Subscriptions the bridge runs.", nil, nil)

func (h holder) Describe(ch chan<- *prometheus.Desc) { ch <- subscriptionsDesc }

func (h holder) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(subscriptionsDesc, prometheus.GaugeValue, float64(h.b.Subscriptions()))
}

// filter answers every request with the bridge (503 without one).
type filter struct{ b *bridge.Bridge }

func (f filter) Wrap(httpfilter.Handler) httpfilter.Handler {
	return httpfilter.HandlerFunc(func(req *httpfilter.Request) error {
		if f.b == nil {
			http.Error(req.W, "the bridge is not running in this process", http.StatusServiceUnavailable)
			return nil
		}
		f.b.ServeHTTP(req.W, req.R)
		return nil
	})
}
