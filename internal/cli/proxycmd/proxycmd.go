// Package proxycmd runs the proxy from the command line: the whole of the
// lean sidecar binary (cmd/trellis-proxy) and the body of `trellis proxy`.
// It uses Go's flag package, not cobra, and links nothing of the control
// plane, so the sidecar stays small.
package proxycmd

import (
	"context"
	"errors"
	"flag"
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

	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// ExitCode is an error that carries a process exit code and has already
// been reported to the user.
type ExitCode int

func (e ExitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Options are the proxy command's flags.
type Options struct {
	configPath   string
	validate     bool
	drainTimeout time.Duration
	logLevel     string
	logFormat    string

	// xDS mode (see xds.go).
	controlPlane string
	dataplane    string
	nodeID       string
	mesh         string
	adminAddress string
	xdsCache     string
	tokenFile    string
	// controlPlaneCA is the control plane's CA file: TLS to it.
	controlPlaneCA string
}

// Check validates the flags.
func (o *Options) Check() error {
	if err := o.checkXDS(); err != nil {
		return err
	}
	if o.configPath == "" && o.controlPlane == "" {
		return errors.New("--config-path (-c) or --control-plane is required")
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

// Long is the command's description.
const Long = "Run the Trellis proxy. Its configuration is an Envoy v3 Bootstrap (YAML or JSON);\n" +
	"docs/proxy-config.md lists the supported fields. SIGHUP re-reads the file and swaps\n" +
	"the configuration without dropping connections; SIGTERM drains and exits 0.\n\n" +
	"With --control-plane the proxy gets its listeners, routes, clusters and endpoints over\n" +
	"ADS instead, identified by --dataplane FILE (or --node-id and --mesh); -c then only adds\n" +
	"the admin address and static resources. With --token-file (or TRELLIS_TOKEN_FILE) it\n" +
	"obtains and rotates its mesh certificate for mutual TLS. See docs/proxy-xds.md."

// FlagSet is what *flag.FlagSet and cobra's *pflag.FlagSet have in common,
// so the lean binary can parse the same flags without linking cobra.
type FlagSet interface {
	StringVar(p *string, name, value, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
}

// Bind registers the flags on f.
func (o *Options) Bind(f FlagSet) {
	f.StringVar(&o.configPath, "config-path", "", "Envoy v3 bootstrap file (YAML or JSON); -c for short")
	f.StringVar(&o.configPath, "c", "", "shorthand for --config-path")
	f.BoolVar(&o.validate, "validate", false, "check the configuration and exit (0 if valid)")
	f.DurationVar(&o.drainTimeout, "drain-timeout", 15*time.Second, "how long SIGTERM waits for in-flight requests")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	o.bindXDS(f)
}

// Main runs the proxy command as a program of its own (trellis-proxy),
// with Go's flag package so the sidecar binary does not link cobra.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := &Options{}
	fs := flag.NewFlagSet("trellis-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: trellis-proxy -c BOOTSTRAP [flags]\n"+
			"       trellis-proxy --control-plane HOST:PORT (--dataplane FILE | --node-id ID [--mesh M]) [-c BOOTSTRAP] [flags]\n\n%s\n\nFlags:\n", Long)
		fs.PrintDefaults()
	}
	o.Bind(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "trellis-proxy: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := o.Check(); err != nil {
		fmt.Fprintln(stderr, "trellis-proxy:", err)
		return 2
	}
	if err := Run(ctx, o, stdout, stderr); err != nil {
		var ec ExitCode
		if errors.As(err, &ec) {
			return int(ec)
		}
		fmt.Fprintln(stderr, "trellis-proxy:", err)
		return 1
	}
	return 0
}

// Run runs the proxy until ctx ends, then drains.
func Run(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	// Listen for SIGHUP before anything is printed: a supervisor that reloads
	// as soon as it sees the listening lines must not kill the proxy.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if o.controlPlane != "" {
		return runXDS(ctx, o, hup, stdout, stderr)
	}
	b, err := decode.LoadBootstrap(o.configPath)
	if err != nil {
		fmt.Fprintf(stderr, "invalid configuration: %v\n", err)
		return ExitCode(1)
	}
	log, version := o.logger(stderr).With("component", "proxy"), buildVersion()
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
	// Decoding the bootstrap and building the snapshot leave garbage that an
	// idle sidecar would otherwise keep resident until the next GC cycle.
	debug.FreeOSMemory()

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

func (o *Options) logger(stderr io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(o.logLevel))
	hopts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if o.logFormat == "json" {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	return slog.New(h)
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// printAddrs prints the bound addresses, one per line, so scripts and tests
// that asked for port 0 can find them.
func printAddrs(w io.Writer, p *proxy.Proxy) {
	if a := p.AdminAddr(); a != "" {
		fmt.Fprintf(w, "admin listening on %s\n", a)
	}
	printListeners(w, p.ListenerAddrs())
}

// printListeners prints each listener's bound address, sorted by name.
func printListeners(w io.Writer, addrs map[string]string) {
	names := make([]string, 0, len(addrs))
	for n := range addrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "listener %s listening on %s\n", strings.TrimSpace(n), addrs[n])
	}
}
