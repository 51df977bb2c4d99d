package ads

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

// Applier is the proxy as the client sees it: *proxy.Proxy. Apply must be
// all or nothing: on error the previous configuration keeps serving.
type Applier interface {
	Apply(*bootstrapv3.Bootstrap) error
}

// Options configure a Client.
type Options struct {
	// Address is the control plane's xDS endpoint, host:port, or several
	// replicas' endpoints separated by commas: the client holds one stream
	// to one of them (picked at random, so proxies spread over replicas)
	// and moves to another when its replica goes away. Required.
	Address string
	// Node identifies the proxy to the control plane (see
	// NodeFromDataplane, StaticNode). Required, with an id.
	Node *corev3.Node
	// Base is the local bootstrap: its admin, node and static resources
	// are part of every configuration applied. Nil means none; the
	// configuration's node is then Node.
	Base *bootstrapv3.Bootstrap
	// Proxy applies the assembled configurations. Required.
	Proxy Applier
	// Credentials secure the connection to the control plane (see
	// TLSCredentials). Nil means plaintext: anyone on the path can read
	// and forge configuration, so use it only on loopback.
	Credentials credentials.TransportCredentials
	// Backoff spaces reconnection attempts; the zero value uses the
	// defaults (250ms doubling to 30s, full jitter).
	Backoff Backoff
	// CachePath, when set, is a file holding the last applied resources:
	// written after every applied update, read by Run before it connects,
	// so a restarted proxy serves before the control plane answers.
	CachePath string
	// Metrics receives the client's metrics. Nil records none.
	Metrics *metrics.XDS
	// Logger receives the client's logs (default slog.Default()).
	Logger *slog.Logger
	// OnApply, when set, is called after each configuration applied, on
	// the client's goroutine.
	OnApply func()
	// Identity says that the proxy obtains its own certificate and hands
	// it to SetIdentity (it has a dataplane token). Either way a
	// configuration whose TLS contexts name IdentitySecret is held until
	// a certificate is there; false only changes what the log says (that
	// no token was given, so it will never be).
	Identity bool
	// MetricsInterval is how often the proxy's metrics are pushed to the
	// control plane on this connection, with Envoy's metrics service (the
	// control plane's golden metrics, docs/metrics.md). Zero means Base's
	// stats_flush_interval, else 10 s; negative turns pushing off. Only a
	// Proxy with Metrics() *metrics.Registry (*proxy.Proxy) is pushed.
	MetricsInterval time.Duration
}

// Client is an ADS client feeding one proxy. Create it with New and run it
// with Run.
type Client struct {
	opts  Options
	log   *slog.Logger
	types map[string]*typeState
	// applied is set once a configuration (from xDS or the cache) has
	// been applied: from then on one type may update without the other.
	applied bool
	// applies counts configurations applied.
	applies int
	// identity is IdentitySecret, nil before SetIdentity; idNext is the
	// certificate SetIdentity handed over last, idWake tells the client's
	// goroutine about it.
	identity *tlsv3.Secret
	idMu     sync.Mutex
	idNext   *tls.Certificate
	idWake   chan struct{}
	// waiting is what the last held configuration missed (logged once).
	waiting string
}

// typeState is what the client knows of one resource type.
type typeState struct {
	url     string
	wild    bool           // LDS and CDS: wildcard subscription
	acked   string         // last ACKed version_info
	nonce   string         // last response nonce on the current stream
	current map[string]any // resources of the acked version, nil before any
	pending map[string]any // a checked response waiting for its dependencies
	pendVer string
	hasPend bool
	names   []string // the subscription last sent (sorted); nil: none sent
	sent    bool     // a request was sent on the current stream

	// rejected is the version last NACKed and rejections how many times
	// in a row; held is a repeated NACK waiting until heldUntil (see nack).
	rejected   string
	rejections int
	held       *discoveryv3.DiscoveryRequest
	heldUntil  time.Time
}

func (t *typeState) effective() map[string]any {
	if t.hasPend {
		return t.pending
	}
	return t.current
}

// New checks opts and returns a Client.
func New(opts Options) (*Client, error) {
	switch {
	case opts.Address == "":
		return nil, errors.New("ads: control-plane address required")
	case opts.Node.GetId() == "":
		return nil, errors.New("ads: node id required")
	case opts.Proxy == nil:
		return nil, errors.New("ads: proxy required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Credentials == nil {
		opts.Credentials = insecure.NewCredentials()
	}
	c := &Client{opts: opts, log: opts.Logger.With("control_plane", opts.Address), types: map[string]*typeState{},
		idWake: make(chan struct{}, 1)}
	for _, u := range allTypes {
		c.types[u] = &typeState{url: u, wild: u == ClusterType || u == ListenerType}
	}
	return c, nil
}

// Run loads the cache (if any), then holds an ADS stream to the control
// plane until ctx ends, reconnecting with back-off whenever it breaks. The
// proxy keeps its last good configuration throughout. It returns nil when
// ctx ends, or an error if the connection cannot be set up at all.
func (c *Client) Run(ctx context.Context) error {
	if c.opts.CachePath != "" {
		c.loadCache()
	}
	conn, err := Dial(c.opts.Address, c.opts.Credentials)
	if err != nil {
		return err
	}
	stopSink := c.runTelemetry(ctx, conn)
	defer func() {
		stopSink()
		conn.Close()
	}()
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	bo := c.opts.Backoff
	for {
		lived, err := c.stream(ctx, ads)
		c.opts.Metrics.SetConnected(false)
		if ctx.Err() != nil {
			return nil
		}
		refused := status.Code(err) == codes.PermissionDenied
		if refused {
			// The control plane refused who this connection is: its TLS
			// client certificate (none before the proxy has one, or one
			// that expired on a long-lived connection). The next stream
			// goes over a new connection, whose handshake presents the
			// current certificate.
			stopSink()
			conn.Close()
			var derr error
			if conn, derr = Dial(c.opts.Address, c.opts.Credentials); derr != nil {
				return derr
			}
			stopSink = c.runTelemetry(ctx, conn)
			ads = discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
		}
		d := bo.Next(lived)
		msg := "xDS stream ended; no configuration yet"
		if c.applied {
			msg = "xDS stream ended; serving the last configuration"
		}
		c.log.Warn(msg, "error", err.Error(), "retry_in", d.Round(time.Millisecond))
		if !c.sleep(ctx, d, refused) {
			return nil
		}
	}
}

// sleep waits d or until ctx ends, meanwhile re-applying the current
// configuration with each new certificate; it reports whether to go on.
// With refused (the control plane wants a client certificate) a new
// certificate ends the wait at once.
func (c *Client) sleep(ctx context.Context, d time.Duration, refused bool) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		case <-c.idWake:
			if c.takeIdentity() {
				c.reapply()
				if refused {
					return true
				}
			}
		}
	}
}

// stream runs one ADS stream until it fails. lived is how long it was up
// (from its first response; 0 if none came).
func (c *Client) stream(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) (lived time.Duration, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		return 0, err
	}
	s := &session{c: c, st: st, first: true}
	for _, t := range c.types {
		t.nonce, t.sent, t.held = "", false, nil
		t.pending, t.hasPend, t.pendVer = nil, false, ""
	}
	// Subscribe again with the last ACKed versions: the control plane can
	// tell what the proxy already runs.
	for _, u := range []string{ClusterType, ListenerType} {
		if err := s.send(c.types[u], c.types[u].acked, nil); err != nil {
			return 0, err
		}
	}
	if err := s.resubscribe(); err != nil {
		return 0, err
	}
	type received struct {
		resp *discoveryv3.DiscoveryResponse
		err  error
	}
	recv := make(chan received)
	go func() {
		for {
			resp, err := st.Recv()
			select {
			case recv <- received{resp, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var up time.Time
	since := func() time.Duration {
		if up.IsZero() {
			return 0
		}
		return time.Since(up)
	}
	for {
		var wake <-chan time.Time
		if d, ok := s.nextHeld(); ok {
			// Unstopped timers are collected (Go 1.23), so the returns
			// below need not stop it.
			tm := time.NewTimer(d)
			wake = tm.C
		}
		select {
		case r := <-recv:
			if r.err != nil {
				return since(), r.err
			}
			if up.IsZero() {
				up = time.Now()
				c.opts.Metrics.SetConnected(true)
				c.log.Info("xDS stream up")
			}
			if err := s.handle(r.resp); err != nil {
				return since(), err
			}
		case <-wake:
			if err := s.sendHeld(); err != nil {
				return since(), err
			}
		case <-c.idWake:
			if err := s.identityChanged(); err != nil {
				return since(), err
			}
		case <-ctx.Done():
			return since(), ctx.Err()
		}
	}
}

// session is one stream's sending side.
type session struct {
	c     *Client
	st    grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
	first bool
}

// send sends a request for t: an ACK (version is the new one) or a
// subscription change (version is the last ACKed one). It supersedes a
// held NACK.
func (s *session) send(t *typeState, version string, status *rpcstatus.Status) error {
	req := &discoveryv3.DiscoveryRequest{
		TypeUrl: t.url, VersionInfo: version, ResponseNonce: t.nonce, ResourceNames: t.names, ErrorDetail: status,
	}
	if s.first {
		req.Node = s.c.opts.Node
		s.first = false
	}
	t.sent, t.held = true, nil
	return s.st.Send(req)
}

// nack rejects version of t with err, keeping t's last ACKed version.
//
// A control plane that answers a NACK by sending the rejected version
// again (go-control-plane's SnapshotCache does, until its snapshot
// changes: envoyproxy/go-control-plane#962) would loop at full speed, so a
// repeated NACK of the same version is held back, 250ms doubling to 10s.
// The control plane sends that type nothing new until the NACK goes out,
// so the hold bounds how late a fixed version arrives.
func (s *session) nack(t *typeState, version string, err error) error {
	c := s.c
	c.opts.Metrics.Update(shortType(t.url), false)
	if version == t.rejected {
		t.rejections++
	} else {
		t.rejected, t.rejections = version, 1
	}
	status := &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
	if t.rejections == 1 {
		c.log.Warn("xDS update rejected; serving the last configuration", "type", shortType(t.url),
			"version", version, "error", err.Error())
		return s.send(t, t.acked, status)
	}
	delay := nackHoldMax
	if n := t.rejections - 2; n < 6 {
		delay = min(nackHoldBase<<n, nackHoldMax)
	}
	c.log.Debug("the control plane sent a rejected version again; holding the NACK", "type", shortType(t.url),
		"version", version, "for", delay)
	t.sent = true
	t.held = &discoveryv3.DiscoveryRequest{
		TypeUrl: t.url, VersionInfo: t.acked, ResponseNonce: t.nonce, ResourceNames: t.names, ErrorDetail: status,
	}
	t.heldUntil = time.Now().Add(delay)
	return nil
}

// The hold of a repeated NACK (see nack).
const (
	nackHoldBase = 250 * time.Millisecond
	nackHoldMax  = 10 * time.Second
)

// nextHeld returns how long until the first held NACK is due.
func (s *session) nextHeld() (time.Duration, bool) {
	var first time.Time
	for _, t := range s.c.types {
		if t.held != nil && (first.IsZero() || t.heldUntil.Before(first)) {
			first = t.heldUntil
		}
	}
	if first.IsZero() {
		return 0, false
	}
	return max(time.Until(first), 0), true
}

// sendHeld sends the held NACKs that are due.
func (s *session) sendHeld() error {
	now := time.Now()
	for _, t := range s.c.types {
		if t.held != nil && !t.heldUntil.After(now) {
			req := t.held
			t.held = nil
			if err := s.st.Send(req); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *session) handle(resp *discoveryv3.DiscoveryResponse) error {
	c := s.c
	t, ok := c.types[resp.GetTypeUrl()]
	if !ok {
		c.log.Warn("ignoring a response of a type not subscribed to", "type_url", resp.GetTypeUrl())
		return nil
	}
	t.nonce = resp.GetNonce()
	res, err := decodeAll(t.url, resp.GetResources())
	if err != nil {
		return s.nack(t, resp.GetVersionInfo(), err)
	}
	if !t.wild {
		// RouteConfigurations and ClusterLoadAssignments missing from a
		// response are not removed (xDS protocol, "Deleting resources"):
		// only the listeners and clusters naming them retire them.
		res = retain(t, res)
	}
	if t.url == SecretType {
		return s.secrets(t, resp.GetVersionInfo(), res)
	}
	t.pending, t.pendVer, t.hasPend = res, resp.GetVersionInfo(), true
	if err := s.resubscribe(); err != nil {
		return err
	}
	return s.tryApply()
}

// retain returns res plus the resources of t that its subscription still
// names and res does not replace.
func retain(t *typeState, res map[string]any) map[string]any {
	prev := t.effective()
	for _, n := range t.names {
		if _, ok := res[n]; ok {
			continue
		}
		if r, ok := prev[n]; ok {
			res[n] = r
		}
	}
	return res
}

// resubscribe sends the EDS, RDS and SDS subscriptions the current (or
// pending) clusters and listeners call for, where they changed.
// IdentitySecret is never asked for: the proxy makes it.
func (s *session) resubscribe() error {
	var eds, rds, sds []string
	for _, r := range s.c.types[ClusterType].effective() {
		if n := r.(*cluster).eds; n != "" {
			eds = append(eds, n)
		}
		sds = append(sds, r.(*cluster).sds...)
	}
	for _, r := range s.c.types[ListenerType].effective() {
		rds = append(rds, r.(*listener).rds...)
		sds = append(sds, r.(*listener).sds...)
	}
	sds = slices.DeleteFunc(sds, func(n string) bool { return n == IdentitySecret })
	for _, x := range []struct {
		t     *typeState
		names []string
	}{{s.c.types[EndpointType], eds}, {s.c.types[RouteType], rds}, {s.c.types[SecretType], sds}} {
		sort.Strings(x.names)
		names := slices.Compact(x.names)
		if x.t.sent && slices.Equal(names, x.t.names) {
			continue
		}
		if !x.t.sent && len(names) == 0 {
			continue // an empty first request would ask for nothing
		}
		x.t.names = names
		if err := s.send(x.t, x.t.acked, nil); err != nil {
			return err
		}
	}
	return nil
}

// Dial returns a gRPC connection to the control plane at address (one
// host:port, or several replicas' separated by commas, as in
// Options.Address), for the ADS stream or the certificate service. Nil
// creds means plaintext.
func Dial(address string, creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	target, extra := dialTarget(address)
	conn, err := grpc.NewClient(target, append(extra, grpc.WithTransportCredentials(creds),
		// A control plane that vanished without closing the connection
		// (host gone, partition) is noticed by keepalive pings. Five
		// minutes is grpc-go servers' default minimum ping interval:
		// pinging more often gets the connection closed (too_many_pings).
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 5 * time.Minute, Timeout: 20 * time.Second}))...)
	if err != nil {
		return nil, fmt.Errorf("ads: %w", err)
	}
	return conn, nil
}

// dialTarget turns Address into a gRPC target. One address dials as it is;
// several become a static resolver with pick_first over a shuffled list,
// so each proxy sticks to one replica and fails over to the next.
func dialTarget(address string) (string, []grpc.DialOption) {
	parts := strings.Split(address, ",")
	if len(parts) == 1 {
		return address, nil
	}
	addrs := make([]resolver.Address, 0, len(parts))
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			// Each replica's TLS certificate is verified for its own host
			// (the target's authority names no replica).
			host, _, _ := net.SplitHostPort(p)
			addrs = append(addrs, resolver.Address{Addr: p, ServerName: host})
		}
	}
	r := manual.NewBuilderWithScheme("trellis-control-plane")
	r.InitialState(resolver.State{Addresses: addrs})
	return r.Scheme() + ":///replicas", []grpc.DialOption{
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}`),
	}
}
