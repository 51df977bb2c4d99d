package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellis-mesh/trellis/examples"
	"github.com/trellis-mesh/trellis/internal/echo"
	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// ProxyOnlyOptions configure the proxy-only demo (`trellis demo
// --proxy-only`). The zero value is usable.
type ProxyOnlyOptions struct {
	// Listen is the proxy's listener address (default 127.0.0.1:10000).
	Listen string
	// Admin is the proxy's admin address (default 127.0.0.1:9901).
	Admin string
	// Out receives the tour (default io.Discard). The example's access
	// log goes to the process's stdout, as its configuration says.
	Out io.Writer
	// Logger receives the proxy's logs (default: discard).
	Logger *slog.Logger
}

// proxyOnlyServices are the proxy-only demo's workloads, by the cluster
// that fronts them.
var proxyOnlyServices = []struct{ cluster, name, version string }{
	{"web-v1", "web", "v1"},
	{"web-v2", "web", "v2"},
	{"api", "api", "v1"},
}

// RunProxyOnly runs the data plane's demo: three built-in echo services
// (web v1, web v2, api) behind one Trellis proxy configured by
// examples/proxy/bootstrap.yaml, with no control plane. It blocks until ctx
// ends, then stops everything.
func RunProxyOnly(ctx context.Context, o ProxyOnlyOptions) error {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:10000"
	}
	if o.Admin == "" {
		o.Admin = "127.0.0.1:9901"
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b, err := decode.Bootstrap(examples.ProxyBootstrap)
	if err != nil {
		return fmt.Errorf("example bootstrap: %w", err)
	}
	if err := setAddress(b.GetAdmin().GetAddress(), o.Admin); err != nil {
		return fmt.Errorf("--admin: %w", err)
	}
	if err := setAddress(b.GetStaticResources().GetListeners()[0].GetAddress(), o.Listen); err != nil {
		return fmt.Errorf("--listen: %w", err)
	}

	var echoes []*echo.Server
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, e := range echoes {
			_ = e.Shutdown(sctx)
		}
	}()
	for _, svc := range proxyOnlyServices {
		e, err := echo.New(echo.Options{Name: svc.name, Version: svc.version, HTTPAddr: "127.0.0.1:0"})
		if err != nil {
			return err
		}
		if err := e.Start(); err != nil {
			return fmt.Errorf("start %s %s: %w", svc.name, svc.version, err)
		}
		echoes = append(echoes, e)
		if err := pointCluster(b, svc.cluster, e.Addr()); err != nil {
			return err
		}
	}

	p := proxy.New(proxy.Options{Logger: o.Logger, DrainTimeout: 5 * time.Second})
	if err := p.Apply(b); err != nil {
		p.Shutdown(context.Background())
		return err
	}
	defer p.Shutdown(context.Background())
	proxyOnlyTour(o.Out, "http://"+p.ListenerAddrs()["edge"], "http://"+p.AdminAddr())
	<-ctx.Done()
	fmt.Fprintln(o.Out, "\nstopping the demo")
	return nil
}

func setAddress(a *corev3.Address, hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("port %q: %w", port, err)
	}
	sa := a.GetSocketAddress()
	if sa == nil {
		return errors.New("the example has no socket address to set")
	}
	sa.Address, sa.PortSpecifier = host, &corev3.SocketAddress_PortValue{PortValue: uint32(n)}
	return nil
}

// pointCluster makes the named cluster's single endpoint addr.
func pointCluster(b *bootstrapv3.Bootstrap, cluster, addr string) error {
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != cluster {
			continue
		}
		eps := c.GetLoadAssignment().GetEndpoints()
		if len(eps) == 0 || len(eps[0].GetLbEndpoints()) == 0 {
			break
		}
		return setAddress(eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress(), addr)
	}
	return fmt.Errorf("example bootstrap: cluster %q with an endpoint not found", cluster)
}

func proxyOnlyTour(w io.Writer, edge, admin string) {
	fmt.Fprintf(w, `Trellis demo: a proxy on %[1]s in front of three services (web v1, web v2, api).
Its configuration is examples/proxy/bootstrap.yaml (plain Envoy v3).

Try, in another terminal:
  curl -s %[1]s/                      # 90%% web v1, 10%% web v2 ("version" in the answer)
  curl -s -H 'x-canary: 1' %[1]s/     # always web v2
  curl -s %[1]s/api/items             # the api service, over HTTP/2 upstream
  curl -s '%[1]s/?status=503'          # upstream errors pass through; see the access log below
  curl -s %[2]s/clusters              # hosts per cluster
  curl -s %[2]s/stats/prometheus | grep trellis_http_route

(Without --proxy-only, trellis demo runs a whole mesh: control plane, sidecars, load.)
Ctrl-C stops everything.

`, edge, admin)
}
