package proxycmd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/credentials"

	"github.com/trellis-mesh/trellis/internal/identity/certclient"
	"github.com/trellis-mesh/trellis/internal/identity/rotate"
	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
	"github.com/trellis-mesh/trellis/internal/xds/ads"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// DefaultAdminAddress is the admin interface's address in xDS mode when
// no bootstrap file names one (Envoy's customary port).
const DefaultAdminAddress = "127.0.0.1:9901"

func (o *Options) bindXDS(f FlagSet) {
	f.StringVar(&o.controlPlane, "control-plane", "", "control plane xDS address HOST:PORT (several replicas: comma separated): take the configuration over ADS")
	f.StringVar(&o.dataplane, "dataplane", "", "Dataplane document (YAML or JSON) identifying this proxy to the control plane")
	f.StringVar(&o.nodeID, "node-id", "", "xDS node id, instead of --dataplane (NAMESPACE/NAME)")
	f.StringVar(&o.mesh, "mesh", "", "mesh of --node-id (default \"default\")")
	f.StringVar(&o.adminAddress, "admin-address", DefaultAdminAddress, "admin interface address with --control-plane when the bootstrap (-c) names none")
	f.StringVar(&o.xdsCache, "xds-cache", "", "file keeping the last configuration from the control plane, served at start until the control plane answers")
	f.StringVar(&o.controlPlaneCA, "control-plane-ca", "", "PEM CA certificate of the control plane (its data dir's ca.crt; default $"+ControlPlaneCAEnv+"): connect over TLS, verifying it, and present this proxy's mesh certificate once it has one; without it the connection is plaintext (loopback only)")
	f.StringVar(&o.tokenFile, "token-file", "", "dataplane token file (`trellis token create`; default $"+TokenFileEnv+"): obtain and rotate this proxy's mesh certificate for mutual TLS")
}

// TokenFileEnv names the environment variable that gives the token file
// when --token-file is not set (xDS mode only).
const TokenFileEnv = "TRELLIS_TOKEN_FILE"

// ControlPlaneCAEnv names the environment variable that gives the control
// plane's CA file when --control-plane-ca is not set (xDS mode only).
const ControlPlaneCAEnv = "TRELLIS_CONTROL_PLANE_CA"

func (o *Options) checkXDS() error {
	if o.controlPlane == "" {
		for flag, v := range map[string]string{"--dataplane": o.dataplane, "--node-id": o.nodeID, "--mesh": o.mesh, "--xds-cache": o.xdsCache, "--token-file": o.tokenFile, "--control-plane-ca": o.controlPlaneCA} {
			if v != "" {
				return fmt.Errorf("%s needs --control-plane", flag)
			}
		}
		return nil
	}
	for _, addr := range strings.Split(o.controlPlane, ",") {
		if _, _, err := net.SplitHostPort(strings.TrimSpace(addr)); err != nil {
			return fmt.Errorf("--control-plane %q: want HOST:PORT[,HOST:PORT...]", o.controlPlane)
		}
	}
	switch {
	case o.dataplane == "" && o.nodeID == "":
		return errors.New("--control-plane needs --dataplane FILE or --node-id ID")
	case o.dataplane != "" && o.nodeID != "":
		return errors.New("--dataplane and --node-id exclude each other (the node id comes from the Dataplane)")
	case o.dataplane != "" && o.mesh != "":
		return errors.New("--mesh goes with --node-id; with --dataplane the mesh is its trellis.dev/mesh label")
	case o.validate:
		return errors.New("--validate checks a bootstrap file; it does not go with --control-plane")
	}
	if _, _, err := net.SplitHostPort(o.adminAddress); err != nil {
		return fmt.Errorf("--admin-address %q: want HOST:PORT", o.adminAddress)
	}
	return nil
}

// runXDS runs the proxy with its configuration from the control plane.
func runXDS(ctx context.Context, o *Options, hup <-chan os.Signal, stdout, stderr io.Writer) error {
	var node *corev3.Node
	if o.dataplane != "" {
		n, err := ads.NodeFromDataplane(o.dataplane)
		if err != nil {
			fmt.Fprintf(stderr, "invalid %v\n", err)
			return ExitCode(1)
		}
		node = n
	} else {
		node = ads.StaticNode(o.nodeID, o.mesh)
	}
	base := &bootstrapv3.Bootstrap{}
	if o.configPath != "" {
		b, err := decode.LoadBootstrap(o.configPath)
		if err != nil {
			fmt.Fprintf(stderr, "invalid configuration: %v\n", err)
			return ExitCode(1)
		}
		base = b
	}
	if base.Admin == nil {
		host, port, _ := net.SplitHostPort(o.adminAddress)
		pv, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return fmt.Errorf("--admin-address %q: port: %w", o.adminAddress, err)
		}
		base.Admin = &bootstrapv3.Admin{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(pv)}}}}}
	}
	sa := base.GetAdmin().GetAddress().GetSocketAddress()
	adminAddr := net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))

	tokenFile, tokenSource := o.tokenFile, "--token-file"
	if tokenFile == "" {
		tokenFile, tokenSource = os.Getenv(TokenFileEnv), TokenFileEnv
	}
	if tokenFile != "" {
		// Fail before serving anything: a missing, unreadable or empty
		// token file is a deployment error, not a transient one.
		if _, err := certclient.ReadToken(tokenFile); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", tokenSource, err)
			return ExitCode(1)
		}
	}

	// The connection's credentials: TLS with the control plane's CA,
	// presenting the proxy's certificate (set on rotation) once there is
	// one; plaintext without a CA.
	var (
		creds credentials.TransportCredentials
		cert  atomic.Pointer[tls.Certificate]
	)
	caFile, caSource := o.controlPlaneCA, "--control-plane-ca"
	if caFile == "" {
		caFile, caSource = os.Getenv(ControlPlaneCAEnv), ControlPlaneCAEnv
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err == nil {
			creds, err = ads.TLSCredentials(pem, cert.Load)
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s %s: %v\n", caSource, caFile, err)
			return ExitCode(1)
		}
	}

	root := o.logger(stderr)
	log := root.With("component", "proxy")
	p := proxy.New(proxy.Options{DrainTimeout: o.drainTimeout, Logger: log, Version: buildVersion()})
	if err := p.StartAdmin(adminAddr); err != nil {
		fmt.Fprintf(stderr, "admin.address: %v\n", err)
		return ExitCode(1)
	}
	fmt.Fprintf(stdout, "admin listening on %s\n", p.AdminAddr())
	// Applying the local part first would make the proxy LIVE before the
	// control plane spoke; its static resources come with the first xDS
	// configuration instead.
	printed := map[string]string{}
	c, err := ads.New(ads.Options{
		Address: o.controlPlane, Node: node, Base: base, Proxy: p, CachePath: o.xdsCache, Identity: tokenFile != "", Credentials: creds,
		Metrics: metrics.NewXDS(p.Metrics()), Logger: root.With("component", "xds"),
		OnApply: func() {
			addrs := p.ListenerAddrs()
			if !maps.Equal(addrs, printed) {
				printListeners(stdout, addrs)
				printed = addrs
			}
		},
	})
	if err != nil {
		p.Shutdown(context.Background())
		return err
	}
	log.Info("waiting for the configuration from the control plane", "control_plane", o.controlPlane, "node", node.GetId(), "mesh", node.GetCluster())
	cctx, cancel := context.WithCancel(ctx)
	var rotating <-chan struct{}
	if tokenFile != "" {
		expiry := metrics.NewIdentity(p.Metrics().Prom)
		mesh, service := ads.DataplaneIdentity(node)
		onRotate := func(cr *tls.Certificate) {
			cert.Store(cr) // new connections to the control plane present it
			c.SetIdentity(cr)
			if cr.Leaf != nil {
				expiry.Set("leaf", mesh, service, cr.Leaf.NotAfter)
			}
		}
		r, err := startIdentity(cctx, o.controlPlane, creds, tokenFile, node, onRotate, root)
		if err != nil {
			cancel()
			p.Shutdown(context.Background())
			return err
		}
		rotating = r
	}
	defer func() {
		if rotating != nil {
			<-rotating
		}
	}()
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	for {
		select {
		case <-hup:
			log.Warn("SIGHUP ignored: the configuration comes from the control plane")
		case err := <-done:
			// Run ends early only if it cannot start at all.
			cancel()
			p.Shutdown(context.Background())
			return err
		case <-ctx.Done():
			cancel()
			<-done
			log.Info("draining", "timeout", o.drainTimeout)
			p.Shutdown(context.Background())
			log.Info("stopped")
			return nil
		}
	}
}

// startIdentity starts obtaining and rotating the proxy's certificate with
// the token in tokenFile, over a connection with creds (nil: plaintext);
// each new certificate goes to onRotate (the ADS client's
// trellis-identity secret, and the client certificate towards the
// control plane). The returned channel closes when rotation has stopped
// (after ctx ends).
func startIdentity(ctx context.Context, address string, creds credentials.TransportCredentials, tokenFile string, node *corev3.Node, onRotate func(*tls.Certificate), root *slog.Logger) (<-chan struct{}, error) {
	conn, err := ads.Dial(address, creds)
	if err != nil {
		return nil, err
	}
	mesh, service := ads.DataplaneIdentity(node)
	log := root.With("component", "identity")
	cc, err := certclient.New(certclient.Options{Conn: conn, Token: certclient.FileToken(tokenFile), Mesh: mesh, Service: service, Node: node.GetId(), Logger: log})
	if err != nil {
		conn.Close()
		return nil, err
	}
	rot, err := rotate.New(rotate.Options{Renew: cc.Renew, OnRotate: onRotate, Logger: log})
	if err != nil {
		conn.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer conn.Close()
		_ = rot.Run(ctx) // returns when ctx ends
	}()
	return done, nil
}
