package demo

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/trellis-mesh/trellis/internal/cli/proxycmd"
)

// instance is one instance of the demo application with its sidecar.
// The ports are the defaults, used when free (see portPicker).
type instance struct {
	name, app, version string
	admin              int            // the sidecar's admin port
	inbound            int            // the sidecar's inbound port; 0 for a client only
	outbound           []outboundPort // the services the instance calls
	bridge             int            // the sidecar's HTTP bridge port; 0 for none
}

type outboundPort struct {
	service string
	port    int // on 127.0.0.1, where the application calls service
}

// instances are the demo's instances: the load generator calls the
// frontend, which calls catalog and reviews (v1 and v2); reviews publishes
// through its sidecars' HTTP bridge, and notifier consumes through its own.
func instances() []*instance {
	return []*instance{
		{name: "loadgen-1", app: "loadgen", version: "v1", admin: 9901,
			outbound: []outboundPort{{"frontend", 15080}}},
		{name: "frontend-1", app: "frontend", version: "v1", admin: 9902, inbound: 10001,
			outbound: []outboundPort{{"catalog", 15001}, {"reviews", 15002}}},
		{name: "catalog-1", app: "catalog", version: "v1", admin: 9903, inbound: 10002},
		{name: "reviews-1", app: "reviews", version: "v1", admin: 9904, inbound: 10003, bridge: 15101},
		{name: "reviews-2", app: "reviews", version: "v2", admin: 9905, inbound: 10004, bridge: 15102},
		{name: "notifier-1", app: "notifier", version: "v1", admin: 9906, inbound: 10005, bridge: 15103},
	}
}

// outboundURL is where in's application calls service.
func (in *instance) outboundURL(service string) string {
	for _, o := range in.outbound {
		if o.service == service {
			return fmt.Sprintf("http://127.0.0.1:%d", o.port)
		}
	}
	return ""
}

// publishURL is where in's application publishes to topic of the demo's
// Broker: its sidecar's HTTP bridge.
func (in *instance) publishURL(topic string) string {
	return fmt.Sprintf("http://127.0.0.1:%d/publish/%s/%s", in.bridge, brokerName, topic)
}

// dataplane is in's Dataplane document with its application on appPort.
func (in *instance) dataplane(appPort int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by `trellis demo`: the sidecar of %s registers this Dataplane.\n", in.name)
	fmt.Fprintf(&b, "apiVersion: trellis.dev/v1alpha1\nkind: Dataplane\nmetadata:\n  name: %s\n  labels: {app: %s, version: %s}\nspec:\n  address: 127.0.0.1\n",
		in.name, in.app, in.version)
	if in.inbound != 0 {
		fmt.Fprintf(&b, "  inbound:\n  - {port: %d, servicePort: 80, appPort: %d}\n", in.inbound, appPort)
	}
	if len(in.outbound) > 0 {
		b.WriteString("  outbound:\n")
		for _, o := range in.outbound {
			fmt.Fprintf(&b, "  - {service: %s, localPort: %d}\n", o.service, o.port)
		}
	}
	if in.bridge != 0 {
		fmt.Fprintf(&b, "  bridge: {port: %d}  # the HTTP bridge to the Brokers (examples/demo/messaging.yaml)\n", in.bridge)
	}
	return b.Bytes()
}

// portPicker hands out loopback ports: the preferred one when it is free
// (and random is false), else one the system picks. Every port handed out
// stays bound until release, so no two are the same; another process may
// still take one between release and its use, which then fails with the
// bind error.
type portPicker struct {
	random bool
	held   []net.Listener
}

func (p *portPicker) pick(preferred int) (int, error) {
	if !p.random {
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(preferred)); err == nil {
			p.held = append(p.held, ln)
			return preferred, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("a free loopback port: %w", err)
	}
	p.held = append(p.held, ln)
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// assign replaces in's default ports with the picked ones.
func (p *portPicker) assign(in *instance) error {
	var err error
	if in.admin, err = p.pick(in.admin); err != nil {
		return err
	}
	if in.inbound != 0 {
		if in.inbound, err = p.pick(in.inbound); err != nil {
			return err
		}
	}
	for i := range in.outbound {
		if in.outbound[i].port, err = p.pick(in.outbound[i].port); err != nil {
			return err
		}
	}
	if in.bridge != 0 {
		if in.bridge, err = p.pick(in.bridge); err != nil {
			return err
		}
	}
	return nil
}

func (p *portPicker) release() {
	for _, ln := range p.held {
		ln.Close()
	}
	p.held = nil
}

// sidecarArgs are the `trellis proxy` arguments of a sidecar.
func sidecarArgs(xds, dataplane, tokenFile string, admin int) []string {
	return []string{"--control-plane", xds, "--dataplane", dataplane, "--token-file", tokenFile,
		"--admin-address", "127.0.0.1:" + strconv.Itoa(admin), "--drain-timeout", "2s", "--log-level", "warn"}
}

// sidecar is a running `trellis proxy`, in this process.
type sidecar struct {
	name string
	*task
}

// startSidecar runs `trellis proxy` with args in this process until ctx
// ends: the same code, flags and xDS registration as the command. Its
// warnings go to log, each line prefixed with name. If it stops before
// ctx ends, stopped gets an error saying so.
func startSidecar(ctx context.Context, name string, args []string, log io.Writer, stopped chan<- error) (*sidecar, error) {
	o := &proxycmd.Options{}
	fs := flag.NewFlagSet("trellis proxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.Bind(fs)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("sidecar %s: %w", name, err)
	}
	if err := o.Check(); err != nil {
		return nil, fmt.Errorf("sidecar %s: %w", name, err)
	}
	t := goTask(func() error {
		err := proxycmd.Run(ctx, o, io.Discard, &prefixWriter{w: log, prefix: name + ": "})
		if ctx.Err() == nil {
			stopped <- fmt.Errorf("sidecar %s stopped: %v", name, err)
		}
		return err
	})
	return &sidecar{name: name, task: t}, nil
}

// writeFile writes data to dir/name with mode 0600 and returns the path.
func writeFile(dir, name string, data []byte) (string, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// prefixWriter prefixes every line written to w with one Write each.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var out bytes.Buffer
	for line := range strings.Lines(string(b)) {
		out.WriteString(p.prefix)
		out.WriteString(line)
	}
	if _, err := p.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}

// syncWriter serialises writes to w from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
