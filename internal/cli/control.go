package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/trellis-mesh/trellis/internal/control"
	"github.com/trellis-mesh/trellis/internal/control/client"
	"github.com/trellis-mesh/trellis/internal/control/telemetry"
	"github.com/trellis-mesh/trellis/internal/store"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
	etcdstore "github.com/trellis-mesh/trellis/internal/store/etcd"
)

// controlOptions are the flags of `trellis control`.
type controlOptions struct {
	apiAddr, xdsAddr string
	dataDir          string
	storeKind        string
	etcdEndpoints    []string
	etcdPrefix       string
	etcdCA           string
	etcdCert         string
	etcdKey          string
	name             string
	dataplanesDir    string
	disconnectGrace  time.Duration
	drainTimeout     time.Duration
	leafTTL          time.Duration
	logLevel         string
	stats            telemetry.Options
	tls              string
	tlsSANs          []string
	tlsCert, tlsKey  string
}

func newControlCmd() *cobra.Command {
	o := &controlOptions{}
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Run the control plane: resource API, store and xDS server",
		Long: "Run a control-plane replica. It serves the REST API the CLI uses (apply, get,\n" +
			"delete, describe) and the xDS endpoint proxies and proxyless gRPC clients\n" +
			"connect to, and keeps every connected proxy's configuration in step with the\n" +
			"stored resources.\n\n" +
			"On first start it creates an admin token in --data-dir and writes a client\n" +
			"config there that `trellis apply/get/...` find on the same machine.\n" +
			"See docs/control-plane.md.",
		Example: "  trellis control\n" +
			"  trellis control --store etcd --etcd-endpoints http://10.0.0.1:2379,http://10.0.0.2:2379",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return o.run(cmd.Context(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.apiAddr, "api-addr", control.DefaultAPIAddr, "host:port of the REST API")
	f.StringVar(&o.xdsAddr, "xds-addr", control.DefaultXDSAddr, "host:port of the xDS (gRPC) endpoint")
	f.StringVar(&o.dataDir, "data-dir", client.DefaultDataDir(), "directory of the bbolt store, the admin token and the client config")
	f.StringVar(&o.storeKind, "store", "bolt", "resource store: bolt (a file in --data-dir) or etcd")
	f.StringSliceVar(&o.etcdEndpoints, "etcd-endpoints", nil, "etcd client URLs, comma separated (with --store etcd)")
	f.StringVar(&o.etcdPrefix, "etcd-prefix", "/trellis", "key prefix of Trellis' data in etcd")
	f.StringVar(&o.etcdCA, "etcd-ca", "", "PEM CA bundle that signs etcd's server certificates")
	f.StringVar(&o.etcdCert, "etcd-cert", "", "PEM client certificate for etcd")
	f.StringVar(&o.etcdKey, "etcd-key", "", "PEM client key for etcd")
	f.StringVar(&o.dataplanesDir, "dataplanes-dir", "", "directory of Dataplane files to keep registered (re-read every 2s; a removed file withdraws its Dataplanes)")
	f.StringVar(&o.name, "name", "", "this replica's name in Dataplane status (default: host@xds-addr)")
	f.DurationVar(&o.disconnectGrace, "disconnect-grace", control.DefaultDisconnectGrace, "how long a proxy may stay disconnected before its endpoints are withdrawn")
	f.DurationVar(&o.drainTimeout, "drain-timeout", control.DefaultDrainTimeout, "on SIGTERM, how long to wait for the API to finish requests")
	f.DurationVar(&o.leafTTL, "leaf-ttl", 24*time.Hour, "lifetime of proxy certificates in the default mesh without a Mesh object (a Mesh's spec.mtls.certificateTTL decides for its own)")
	f.StringVar(&o.tls, "tls", string(control.TLSAuto), "serve the API and xDS over TLS: auto (on a listener that is not loopback), on or off")
	f.StringSliceVar(&o.tlsSANs, "tls-san", nil, "extra DNS names or IP addresses of the serving certificate, comma separated (the listen hosts, the host name, localhost and 127.0.0.1 are always in it)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "PEM serving certificate (chain) to use instead of one issued by the control plane's own CA")
	f.StringVar(&o.tlsKey, "tls-key", "", "PEM key of --tls-cert")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.DurationVar(&o.stats.Resolution, "stats-resolution", telemetry.DefaultResolution, "width of one bucket of the golden metrics' rolling windows (trellis stat)")
	f.DurationVar(&o.stats.Retention, "stats-retention", telemetry.DefaultRetention, "longest golden-metrics window kept")
	f.IntVar(&o.stats.MaxSeries, "stats-max-series", telemetry.DefaultMaxSeries, "cap on golden-metrics series (services, routes, dataplanes, edges); about 11 KiB each")
	return cmd
}

func (o *controlOptions) validate() error {
	var errs []error
	switch o.storeKind {
	case "bolt":
		if len(o.etcdEndpoints) > 0 {
			errs = append(errs, errors.New("--etcd-endpoints needs --store etcd"))
		}
	case "etcd":
		if len(o.etcdEndpoints) == 0 {
			errs = append(errs, errors.New("--store etcd needs --etcd-endpoints"))
		}
		if (o.etcdCert == "") != (o.etcdKey == "") {
			errs = append(errs, errors.New("--etcd-cert and --etcd-key go together"))
		}
	default:
		errs = append(errs, fmt.Errorf("--store %q: want bolt or etcd", o.storeKind))
	}
	switch control.TLSMode(o.tls) {
	case control.TLSAuto, control.TLSOn, control.TLSOff:
	default:
		errs = append(errs, fmt.Errorf("--tls %q: want auto, on or off", o.tls))
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if o.tls == string(control.TLSOff) && (o.tlsCert != "" || len(o.tlsSANs) > 0) {
		errs = append(errs, errors.New("--tls-cert and --tls-san do not go with --tls off"))
	}
	if o.disconnectGrace <= 0 {
		errs = append(errs, fmt.Errorf("--disconnect-grace %s: must be positive", o.disconnectGrace))
	}
	if _, err := parseLevel(o.logLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func (o *controlOptions) run(ctx context.Context, stderr io.Writer) error {
	level, _ := parseLevel(o.logLevel)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	st, closeStore, err := o.openStore(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	c, err := control.New(control.Options{
		Store: st, APIAddr: o.apiAddr, XDSAddr: o.xdsAddr, DataDir: o.dataDir, Name: o.name,
		DisconnectGrace: o.disconnectGrace, DrainTimeout: o.drainTimeout, LeafTTL: o.leafTTL, Logger: log, DataplanesDir: o.dataplanesDir,
		Telemetry: o.stats, TLS: control.TLSMode(o.tls), TLSSANs: o.tlsSANs, TLSCertFile: o.tlsCert, TLSKeyFile: o.tlsKey,
	})
	if err != nil {
		return err
	}
	_, xds := c.Addrs()
	fmt.Fprintf(stderr, "control plane: api on %s, xds on %s, data in %s\n", c.APIURL(), xds, o.dataDir)
	if _, xdsTLS, caPEM := c.TLS(); caPEM != nil {
		fmt.Fprintf(stderr, "control plane: xds over TLS: %v; clients and proxies verify it with %s\n", xdsTLS, filepath.Join(o.dataDir, control.CAFile))
	}
	if o.tls == string(control.TLSOff) {
		log.Warn("--tls off: the API and xDS are plaintext wherever they listen; tokens cross the network in clear")
	}
	return c.Run(ctx)
}

func (o *controlOptions) openStore(ctx context.Context) (store.Store, func(), error) {
	if o.storeKind == "bolt" {
		path := filepath.Join(o.dataDir, "trellis.db")
		s, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
	cfg := clientv3.Config{Endpoints: o.etcdEndpoints, DialTimeout: 5 * time.Second, Context: ctx, Logger: zap.NewNop()}
	if o.etcdCA != "" || o.etcdCert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.etcdCA != "" {
			pem, err := os.ReadFile(o.etcdCA)
			if err != nil {
				return nil, nil, fmt.Errorf("--etcd-ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("--etcd-ca %s: no PEM certificate in it", o.etcdCA)
			}
		}
		if o.etcdCert != "" {
			cert, err := tls.LoadX509KeyPair(o.etcdCert, o.etcdKey)
			if err != nil {
				return nil, nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("etcd %s: %w", strings.Join(o.etcdEndpoints, ","), err)
	}
	s := etcdstore.New(ctx, cli, o.etcdPrefix)
	return s, func() { s.Close(); cli.Close() }, nil
}
