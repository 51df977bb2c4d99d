package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/echo"
)

// echoOptions are the flags of `trellis echo`.
type echoOptions struct {
	listen       string
	tcpListen    string
	name         string
	version      string
	tlsCert      string
	tlsKey       string
	drainTimeout time.Duration
}

func newEchoCmd() *cobra.Command {
	o := &echoOptions{}
	cmd := &cobra.Command{
		Use:   "echo",
		Short: "Run the built-in echo workload (HTTP, h2c, gRPC, WebSocket, TCP)",
		Long: "Run a test backend that describes each request it gets, or answers as the\n" +
			"request's controls ask (status, size, delay, fail, reset, echo_body, ...).\n" +
			"One port serves HTTP/1.1, h2c, gRPC and upgrades; see docs/echo.md.\n\n" +
			"Once listening it prints \"echo listening on http://ADDR\" (and a tcp:// line\n" +
			"with --tcp-listen), then serves until interrupted, draining in-flight requests.\n" +
			"Do not expose it to untrusted networks: clients control its responses.",
		Example: "  trellis echo --listen 127.0.0.1:0 --name backend-a --version v2\n" +
			"  curl 'http://127.0.0.1:8080/anything?status=503&delay=200ms'",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", echo.DefaultHTTPAddr, "host:port for HTTP/1.1, h2c (or h2 with TLS) and gRPC; port 0 picks one")
	f.StringVar(&o.tcpListen, "tcp-listen", "", "host:port of an optional raw TCP echo listener")
	f.StringVar(&o.name, "name", "", "name reported in x-echo-name and the JSON body (default: the host name)")
	f.StringVar(&o.version, "version", echo.DefaultVersion, "version reported in x-echo-version and the JSON body")
	f.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate chain file; with --tls-key, serve TLS (h2 and http/1.1)")
	f.StringVar(&o.tlsKey, "tls-key", "", "PEM private key file for --tls-cert")
	f.DurationVar(&o.drainTimeout, "drain-timeout", echo.DefaultDrainTimeout, "on interrupt, how long to wait for in-flight requests and tunnels")
	return cmd
}

func (o *echoOptions) validate() error {
	var errs []error
	if o.listen == "" {
		errs = append(errs, errors.New("--listen must not be empty"))
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key must be set together"))
	}
	if o.drainTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--drain-timeout %v must be positive", o.drainTimeout))
	}
	return errors.Join(errs...)
}

// run serves until ctx is done (SIGINT or SIGTERM in main), then drains.
// An interrupted drain is reported on errOut but still exits 0: stopping
// on a signal is the expected end of this command.
func (o *echoOptions) run(ctx context.Context, out, errOut io.Writer) error {
	logger := slog.New(slog.NewTextHandler(errOut, nil)).With("component", "echo")
	srv, err := echo.New(echo.Options{
		Name:         o.name,
		Version:      o.version,
		HTTPAddr:     o.listen,
		TCPAddr:      o.tcpListen,
		TLSCertFile:  o.tlsCert,
		TLSKeyFile:   o.tlsKey,
		DrainTimeout: o.drainTimeout,
		Logger:       logger,
	})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(out, "echo listening on %s://%s\n", scheme, srv.Addr())
	if addr := srv.TCPAddr(); addr != "" {
		fmt.Fprintf(out, "echo listening on tcp://%s\n", addr)
	}
	err = srv.Serve(ctx)
	if err != nil && ctx.Err() != nil {
		// The drain ran out of time after a signal: still a clean stop.
		logger.Warn("drain cut short", "err", err)
		return nil
	}
	return err
}
