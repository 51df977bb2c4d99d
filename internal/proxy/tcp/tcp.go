// Package tcp is Envoy's envoy.filters.network.tcp_proxy: it connects each
// downstream connection to a host of an upstream cluster (chosen directly or
// by weight) and copies bytes both ways, with an idle timeout.
//
// A Proxy is built once per snapshot and is immutable; Handle is called
// concurrently, once per connection.
package tcp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/cluster"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/cluster/outlier"
	"github.com/trellis-mesh/trellis/internal/telemetry/accesslog"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// DefaultIdleTimeout is Envoy's tcp_proxy idle_timeout default.
const DefaultIdleTimeout = time.Hour

// Proxy is one configured tcp_proxy.
type Proxy struct {
	Listener    string
	StatPrefix  string
	clusters    *cluster.Set
	cluster     string
	weighted    []weighted
	total       uint64
	IdleTimeout time.Duration
	stats       *metrics.TCP
	logs        []*accesslog.Logger
}

type weighted struct {
	name   string
	weight uint64
}

// Deps are what Build needs from the snapshot being built.
type Deps struct {
	Listener string
	Clusters *cluster.Set
	Metrics  *metrics.Registry
	// OpenLog opens the i-th access_log entry of the TcpProxy.
	OpenLog func(i int) (*accesslog.Logger, error)
}

// Build translates a TcpProxy. Errors name fields below it.
func Build(pb *tcpv3.TcpProxy, d Deps) (*Proxy, error) {
	p := &Proxy{
		Listener: d.Listener, StatPrefix: pb.GetStatPrefix(), clusters: d.Clusters,
		IdleTimeout: DefaultIdleTimeout, stats: d.Metrics.TCP(pb.GetStatPrefix()),
	}
	if t := pb.GetIdleTimeout(); t != nil {
		p.IdleTimeout = t.AsDuration()
	}
	var errs []error
	switch cs := pb.GetClusterSpecifier().(type) {
	case *tcpv3.TcpProxy_Cluster:
		p.cluster = cs.Cluster
		if d.Clusters.Get(cs.Cluster) == nil {
			errs = append(errs, fmt.Errorf("cluster: %q is not defined", cs.Cluster))
		}
	case *tcpv3.TcpProxy_WeightedClusters:
		for i, c := range cs.WeightedClusters.GetClusters() {
			if d.Clusters.Get(c.GetName()) == nil {
				errs = append(errs, fmt.Errorf("weighted_clusters.clusters[%d].name: %q is not defined", i, c.GetName()))
			}
			p.weighted = append(p.weighted, weighted{c.GetName(), uint64(c.GetWeight())})
			p.total += uint64(c.GetWeight())
		}
		if p.total == 0 {
			errs = append(errs, errors.New("weighted_clusters: the sum of weights must be > 0"))
		}
	default:
		errs = append(errs, errors.New("cluster_specifier: one of cluster, weighted_clusters is required"))
	}
	for i := range pb.GetAccessLog() {
		l, err := d.OpenLog(i)
		if err != nil {
			errs = append(errs, fmt.Errorf("access_log[%d].%w", i, err))
			continue
		}
		p.logs = append(p.logs, l)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

func (p *Proxy) pickCluster() string {
	if p.cluster != "" {
		return p.cluster
	}
	n := rand.Uint64N(p.total)
	for _, w := range p.weighted {
		if n < w.weight {
			return w.name
		}
		n -= w.weight
	}
	return p.weighted[len(p.weighted)-1].name
}

// Handle proxies one downstream connection until either side closes, the
// idle timeout fires or ctx ends. It closes down.
func (p *Proxy) Handle(ctx context.Context, down net.Conn) {
	start := time.Now()
	p.stats.Connections.Inc()
	p.stats.Active.Inc()
	defer p.stats.Active.Dec()
	defer down.Close()
	e := accesslog.Entry{Start: start, Kind: "tcp", Listener: p.Listener, DownstreamRemote: down.RemoteAddr().String()}
	defer func() {
		e.Duration = time.Since(start)
		for _, l := range p.logs {
			l.Log(&e)
		}
	}()

	name := p.pickCluster()
	e.UpstreamCluster = name
	cl := p.clusters.Get(name)
	if cl == nil {
		e.Flags |= accesslog.NoClusterFound
		return
	}
	host := cl.Pick(&lb.Request{})
	if host == nil {
		e.Flags |= accesslog.NoHealthyUpstream
		return
	}
	e.UpstreamHost = host.Address
	host.Begin()
	defer host.End()
	up, err := cl.Dial(ctx, host.Address)
	if err != nil {
		if errors.Is(err, cluster.ErrConnectionOverflow) {
			e.Flags |= accesslog.UpstreamOverflow
			e.Reason = "upstream_overflow"
			return
		}
		cl.Report(host, outlier.ConnectFailure, 0)
		e.Flags |= accesslog.UpstreamConnectionFailure
		e.Reason = "upstream_connect_failure"
		return
	}
	cl.Report(host, outlier.ConnectSuccess, 0)
	defer up.Close()

	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		n := pipe(up, down, &last, p.stats.BytesUp)
		e.BytesReceived = n
	}()
	go func() {
		defer wg.Done()
		n := pipe(down, up, &last, p.stats.BytesDown)
		e.BytesSent = n
	}()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var tick <-chan time.Time
	if p.IdleTimeout > 0 {
		t := time.NewTicker(p.IdleTimeout / 4)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			down.Close()
			up.Close()
			<-done
			return
		case <-tick:
			if time.Since(time.Unix(0, last.Load())) >= p.IdleTimeout {
				e.Reason = "idle_timeout"
				down.Close()
				up.Close()
				<-done
				return
			}
		}
	}
}

type counter interface{ Add(float64) }

// pipe copies src to dst, recording activity, and half-closes dst at EOF.
func pipe(dst, src net.Conn, last *atomic.Int64, c counter) int64 {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
			total += int64(n)
			c.Add(float64(n))
		}
		if err != nil {
			break
		}
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
	return total
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
