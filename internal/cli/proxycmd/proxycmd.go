// Package proxycmd is the `trellis proxy` command. It lives in its own
// package so the lean sidecar binary (cmd/trellis-proxy) links only the data
// plane and none of the control plane's dependencies.
package proxycmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// ExitCode is an error that carries a process exit code and has already
// been reported to the user.
type ExitCode int

func (e ExitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

type options struct {
	configPath   string
	validate     bool
	drainTimeout time.Duration
	logLevel     string
	logFormat    string
}

func (o *options) check() error {
	if o.configPath == "" {
		return errors.New("--config-path (-c) is required")
	}
	if o.drainTimeout < 0 {
		return errors.New("--drain-timeout must not be negative")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", o.logFormat)
	}
	return nil
}

// NewCommand returns the `proxy` command.
func NewCommand() *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "proxy -c BOOTSTRAP",
		Short: "Run the data-plane proxy from an Envoy v3 bootstrap file",
		Long: "Run the Trellis proxy. Its configuration is an Envoy v3 Bootstrap (YAML or JSON);\n" +
			"docs/proxy-config.md lists the supported fields. SIGHUP re-reads the file and swaps\n" +
			"the configuration without dropping connections; SIGTERM drains and exits 0.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			return run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.configPath, "config-path", "c", "", "Envoy v3 bootstrap file (YAML or JSON)")
	f.BoolVar(&o.validate, "validate", false, "check the configuration and exit (0 if valid)")
	f.DurationVar(&o.drainTimeout, "drain-timeout", 15*time.Second, "how long SIGTERM waits for in-flight requests")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// Main runs the proxy command as a program of its own (trellis-proxy).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := NewCommand()
	cmd.Use = "trellis-proxy -c BOOTSTRAP"
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		var ec ExitCode
		if errors.As(err, &ec) {
			return int(ec)
		}
		fmt.Fprintln(stderr, "trellis-proxy:", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	b, err := decode.LoadBootstrap(o.configPath)
	if err != nil {
		fmt.Fprintf(stderr, "invalid configuration: %v\n", err)
		return ExitCode(1)
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(o.logLevel))
	hopts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if o.logFormat == "json" {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	log := slog.New(h).With("component", "proxy")
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	p := proxy.New(proxy.Options{ConfigPath: o.configPath, DrainTimeout: o.drainTimeout, Logger: log, Version: version})
	if o.validate {
		if err := p.Validate(b); err != nil {
			fmt.Fprintf(stderr, "invalid configuration: %v\n", err)
			return ExitCode(1)
		}
		fmt.Fprintf(stdout, "configuration %s OK\n", o.configPath)
		return nil
	}
	if err := p.Apply(b); err != nil {
		fmt.Fprintf(stderr, "cannot apply configuration: %v\n", err)
		p.Shutdown(context.Background())
		return ExitCode(1)
	}
	printAddrs(stdout, p)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if err := p.Reload(); err != nil {
				log.Error("reload rejected; the previous configuration stays active", "error", err.Error())
				continue
			}
			printAddrs(stdout, p)
		case <-ctx.Done():
			log.Info("draining", "timeout", o.drainTimeout)
			p.Shutdown(context.Background())
			log.Info("stopped")
			return nil
		}
	}
}

// printAddrs prints the bound addresses, one per line, so scripts and tests
// that asked for port 0 can find them.
func printAddrs(w io.Writer, p *proxy.Proxy) {
	if a := p.AdminAddr(); a != "" {
		fmt.Fprintf(w, "admin listening on %s\n", a)
	}
	addrs := p.ListenerAddrs()
	names := make([]string, 0, len(addrs))
	for n := range addrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "listener %s listening on %s\n", strings.TrimSpace(n), addrs[n])
	}
}
