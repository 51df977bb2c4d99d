// Package demo runs `trellis demo`: a whole mesh on this machine, on the
// embedded defaults, in a temporary data directory. It starts a control
// plane (bbolt store, REST API, xDS), applies the resources of
// examples/demo through the API as `trellis apply` does (a Mesh, the
// Services with the version subsets of reviews, a 90/10 HTTPRoute canary,
// a TrafficPolicy, a NATS Broker and a Subscription), starts an embedded
// nats-server with JetStream, the application (frontend calling catalog
// and reviews v1/v2; reviews publishing a reviews.viewed event per read
// through its sidecar's HTTP bridge, consumed by notifier) with one
// `trellis proxy` sidecar per instance registered over xDS, and a load
// generator calling the frontend through a sidecar of its own. Everything runs in this process as goroutines (the sidecars run
// the proxy command's own code, proxycmd.Run, over real loopback sockets),
// so nothing outlives it. It also makes the CLI of another terminal find
// the demo's control plane (see cliConfig).
//
// RunProxyOnly is the data plane's demo: one proxy from an Envoy bootstrap
// in front of three services, without a control plane.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	demofiles "github.com/trellis-mesh/trellis/examples/demo"
	"github.com/trellis-mesh/trellis/internal/control"
	"github.com/trellis-mesh/trellis/internal/control/client"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
)

// Defaults of Options.
const (
	DefaultReportEvery  = 10 * time.Second
	DefaultStartTimeout = 30 * time.Second
	// mesh is the demo's mesh.
	mesh = "default"
)

// Options configure the demo. The zero value runs it without load.
type Options struct {
	// RandomPorts makes every port one the system picks. Default: the
	// control plane's API on 7070 and xDS on 7071, nats-server on 4222,
	// the sidecars' admin on 9901-9906, their inbound ports 10001-10005,
	// outbound ports 15001, 15002 and 15080 and bridge ports 15101-15103,
	// each where free, else one the system picks.
	RandomPorts bool
	// Rate is the load generator's requests per second; 0 runs none.
	Rate float64
	// ReportEvery is how often Out gets a line summing up the load.
	// Zero means DefaultReportEvery; negative, never.
	ReportEvery time.Duration
	// ClientConfig is the client config file the CLI reads when given no
	// flags. Empty: $TRELLIS_CONFIG, else ~/.trellis/config.yaml. The demo
	// writes it only when there is none, and removes it when it stops.
	ClientConfig string
	// StartTimeout bounds the time from start until the frontend answers
	// through the mesh. Zero means DefaultStartTimeout.
	StartTimeout time.Duration
	// Out receives the tour and the load summaries. Default: io.Discard.
	Out io.Writer
	// Log receives the components' warnings and errors, each line
	// prefixed with the component. Default: io.Discard.
	Log io.Writer
}

// task is a goroutine whose end can be waited for and selected on.
type task struct {
	done chan struct{}
	err  error
}

func goTask(f func() error) *task {
	t := &task{done: make(chan struct{})}
	go func() { t.err = f(); close(t.done) }()
	return t
}

func (t *task) wait() error { <-t.done; return t.err }

// Run runs the demo until ctx ends, then stops everything (load,
// sidecars, application, control plane, nats-server), removes the client config it
// wrote and its data directory, and returns nil. An error means the demo
// could not start, or a component failed while it ran.
func Run(ctx context.Context, o Options) (err error) {
	if o.ReportEvery == 0 {
		o.ReportEvery = DefaultReportEvery
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.ClientConfig == "" {
		o.ClientConfig = defaultClientConfig()
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	logw := &syncWriter{w: o.Log}
	toured := false
	defer func() {
		if toured {
			fmt.Fprintln(o.Out, "demo stopped")
		}
	}()
	dir, err := os.MkdirTemp("", "trellis-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, sub := range []string{"dataplanes", "tokens", "resources"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}

	// Ports first: the client config depends on the API's address.
	pp := &portPicker{random: o.RandomPorts}
	defer pp.release()
	apiPort, err := pp.pick(7070)
	if err != nil {
		return err
	}
	xdsPort, err := pp.pick(7071)
	if err != nil {
		return err
	}
	natsPort, err := pp.pick(4222)
	if err != nil {
		return err
	}
	ins := instances()
	for _, in := range ins {
		if err := pp.assign(in); err != nil {
			return err
		}
	}
	pp.release()
	apiURL, xdsAddr := "http://127.0.0.1:"+strconv.Itoa(apiPort), "127.0.0.1:"+strconv.Itoa(xdsPort)

	// The message broker starts while the control plane does; it is
	// stopped after the sidecars that use it.
	natsURL := "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	natsCtx, cancelNATS := context.WithTimeout(ctx, o.StartTimeout)
	var ns *natsServer
	natsUp := goTask(func() (err error) { ns, err = startNATS(natsCtx, dir, natsPort); return err })
	defer func() {
		cancelNATS()
		natsUp.wait()
		if ns != nil {
			ns.stop()
		}
	}()
	cc := planClientConfig(o.ClientConfig, apiURL)

	// The control plane.
	st, err := bolt.Open(filepath.Join(dir, "trellis.db"), bolt.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(&prefixWriter{w: logw, prefix: "control: "}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := control.New(control.Options{
		Store: st, APIAddr: hostPort(apiURL), XDSAddr: xdsAddr, DataDir: dir, Token: cc.token,
		DrainTimeout: 2 * time.Second, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	ctlCtx, stopCtl := context.WithCancel(context.Background())
	ctl := goTask(func() error { return c.Run(ctlCtx) })
	defer func() {
		stopCtl()
		if cerr := ctl.wait(); cerr != nil && err == nil {
			err = fmt.Errorf("control plane: %w", cerr)
		}
	}()
	if err := cc.install(client.Config{Server: apiURL, Token: c.Token()}); err != nil {
		return err
	}
	defer func() {
		if rerr := cc.restore(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	startCtx, cancelStart := context.WithTimeout(ctx, o.StartTimeout)
	defer cancelStart()
	cl, err := client.New(client.Config{Server: apiURL, Token: c.Token()})
	if err != nil {
		return err
	}
	applied, err := applyResources(startCtx, cl, dir, natsURL)
	if err != nil {
		return err
	}
	if err := natsUp.wait(); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}

	// The application, its sidecars' identities and the sidecars.
	apps, err := startApps(ins)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, a := range apps {
			a.shutdown(sctx)
		}
	}()
	if err != nil {
		return err
	}
	sideCtx, stopSidecars := context.WithCancel(context.Background())
	var sidecars []*sidecar
	stopped := make(chan error, len(ins)) // sidecars that stopped on their own
	defer func() {
		stopSidecars()
		for _, s := range sidecars {
			if serr := s.wait(); serr != nil && err == nil {
				err = fmt.Errorf("sidecar %s: %w", s.name, serr)
			}
		}
	}()
	for _, in := range ins {
		args, err := prepareSidecar(startCtx, cl, dir, xdsAddr, in, apps[in.name])
		if err != nil {
			return err
		}
		s, err := startSidecar(sideCtx, in.name, args, logw, stopped)
		if err != nil {
			return err
		}
		sidecars = append(sidecars, s)
	}
	entry := ins[0].outboundURL("frontend") + "/"
	if err := waitReady(startCtx, cl, ins, entry); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}

	// The load, and the tour.
	if o.Rate > 0 {
		lctx, stopLoad := context.WithCancel(ctx)
		lg := newLoadGen(entry, o.Rate)
		load := goTask(func() error { lg.run(lctx, o.Out, o.ReportEvery); return nil })
		defer func() { stopLoad(); load.wait() }()
	}
	tour(o.Out, tourInfo{
		dir: dir, api: apiURL, xds: xdsAddr, nats: natsURL, dashboard: dashboardURL(apiURL, c.Token()), entry: entry, applied: applied, ins: ins, rate: o.Rate,
		config: cc.describe(filepath.Join(dir, client.ConfigFile)), route: routePath(dir),
	})
	toured = true
	select {
	case <-ctx.Done():
	case <-ctl.done:
		return fmt.Errorf("control plane stopped: %v", ctl.err)
	case err := <-stopped:
		return err
	}
	fmt.Fprintln(o.Out, "\nstopping the demo")
	return nil
}

// hostPort is the HOST:PORT of an http:// URL.
func hostPort(url string) string { return strings.TrimPrefix(url, "http://") }

// applyResources writes the demo's resource files to dir/resources and
// applies them through the API, as `trellis apply -f` does, with the
// Broker's address replaced by natsURL; it returns the results as
// KIND/NAME.
func applyResources(ctx context.Context, cl *client.Client, dir, natsURL string) ([]string, error) {
	addr := strings.NewReplacer(defaultNATSAddr, natsURL)
	for _, f := range demofiles.Files() {
		if _, err := writeFile(filepath.Join(dir, "resources"), f.Name, []byte(addr.Replace(string(f.Data)))); err != nil {
			return nil, err
		}
	}
	results, err := cl.Apply(ctx, strings.NewReader(addr.Replace(string(demofiles.Resources()))))
	if err != nil {
		return nil, fmt.Errorf("apply examples/demo: %w", err)
	}
	var out []string
	for _, r := range results {
		out = append(out, strings.ToLower(r.Kind)+"/"+r.Name)
	}
	return out, nil
}

// startApps starts the application instance of every instance that has
// an inbound port, by instance name. On error it returns those started.
func startApps(ins []*instance) (map[string]*appServer, error) {
	apps := map[string]*appServer{}
	byName := map[string]*instance{}
	for _, in := range ins {
		byName[in.name] = in
	}
	for _, in := range ins {
		self := ServedBy{Service: in.app, Instance: in.name, Version: in.version}
		var h http.Handler
		switch in.app {
		case "catalog":
			h = catalogHandler(self)
		case "reviews":
			fail := 0.0
			if in.version == "v2" {
				fail = 2
			}
			pub := newPublisher(in.publishURL(topicViewed), "/demo/reviews/"+in.name)
			a, err := startApp(reviewsHandler(self, fail, func(ev ReviewViewed) { pub.publish(ev) }))
			if err != nil {
				pub.close()
				return apps, fmt.Errorf("%s: %w", in.name, err)
			}
			a.close = pub.close
			apps[in.name] = a
			continue
		case "notifier":
			h = (&notifier{self: self, failPercent: 2}).handler()
		case "frontend":
			h = &frontend{self: self, catalog: in.outboundURL("catalog"), reviews: in.outboundURL("reviews"),
				client: &http.Client{Timeout: 5 * time.Second}}
		default:
			continue // the load generator is started last, once the mesh is up
		}
		a, err := startApp(h)
		if err != nil {
			return apps, fmt.Errorf("%s: %w", in.name, err)
		}
		apps[in.name] = a
	}
	return apps, nil
}

// prepareSidecar writes in's Dataplane and a token of its service to dir
// and returns its sidecar's `trellis proxy` arguments.
func prepareSidecar(ctx context.Context, cl *client.Client, dir, xdsAddr string, in *instance, app *appServer) ([]string, error) {
	appPort := 0
	if app != nil {
		appPort = app.port()
	}
	dp, err := writeFile(filepath.Join(dir, "dataplanes"), in.name+".yaml", in.dataplane(appPort))
	if err != nil {
		return nil, err
	}
	tok, err := cl.CreateToken(ctx, mesh, in.app, "")
	if err != nil {
		return nil, fmt.Errorf("token for %s: %w", in.name, err)
	}
	tf, err := writeFile(filepath.Join(dir, "tokens"), in.name+".token", []byte(tok.Token+"\n"))
	if err != nil {
		return nil, err
	}
	return sidecarArgs(xdsAddr, dp, tf, in.admin), nil
}

// waitReady waits until every instance's Dataplane is connected and the
// frontend answers at entry with content from catalog and reviews.
func waitReady(ctx context.Context, cl *client.Client, ins []*instance, entry string) error {
	tick := time.NewTicker(25 * time.Millisecond) // cheap: a list and a GET on loopback
	defer tick.Stop()
	hc := &http.Client{Timeout: 2 * time.Second}
	last := "nothing tried yet"
	for {
		if why := notReady(ctx, cl, hc, ins, entry); why == "" {
			return nil
		} else {
			last = why
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the demo mesh did not come up: %s", last)
		case <-tick.C:
		}
	}
}

// notReady says what is not ready yet, or "".
func notReady(ctx context.Context, cl *client.Client, hc *http.Client, ins []*instance, entry string) string {
	items, err := cl.List(ctx, "dataplanes", "")
	if err != nil {
		return err.Error()
	}
	connected := map[string]bool{}
	for _, raw := range items {
		var dp struct {
			Metadata struct{ Name string }    `json:"metadata"`
			Status   struct{ Connected bool } `json:"status"`
		}
		if json.Unmarshal(raw, &dp) == nil && dp.Status.Connected {
			connected[dp.Metadata.Name] = true
		}
	}
	for _, in := range ins {
		if !connected[in.name] {
			return "sidecar " + in.name + " not connected to the control plane"
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, entry, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "frontend: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var p Page
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &p) != nil {
		return fmt.Sprintf("frontend: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if p.ServedBy.Catalog.Service != "catalog" || p.ServedBy.Reviews.Service != "reviews" {
		return fmt.Sprintf("frontend answered without catalog or reviews: %s", body)
	}
	return ""
}

// routePath is the route file the tour edits: examples/demo/route.yaml
// when run from the repository, else the demo's copy.
func routePath(dir string) string {
	const repo = "examples/demo/route.yaml"
	for _, f := range demofiles.Files() {
		if f.Name == "route.yaml" {
			if data, err := os.ReadFile(repo); err == nil && bytes.Equal(data, f.Data) {
				return repo
			}
		}
	}
	return filepath.Join(dir, "resources", "route.yaml")
}
