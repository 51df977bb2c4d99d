package control_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/internal/control/telemetry"
)

// TestMeshNATS runs a NATS Service through the mesh: a real nats-server
// behind the events Dataplane's sidecar, and an app sidecar with an
// outbound to events. A real nats.go subscriber and publisher both
// connect to the app's outbound port; every message published arrives,
// and both sidecars' NATS filters, configured by the control plane,
// count it by subject: the caller's under
// "outbound:default/events:4222", the broker's under
// "inbound:default/events:4222", deliveries under the subscribed pattern.
// The control plane's topic kind (`trellis stat topic`) counts each
// message once, from the caller's side.
func TestMeshNATS(t *testing.T) {
	m := startGMControl(t)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	ports := freePorts(t, 2) // events' inbound, app's outbound
	m.apply(`kind: Mesh
apiVersion: trellis.dev/v1alpha1
metadata: {name: default}
spec: {mtls: {mode: DISABLED}}
---
kind: Service
apiVersion: trellis.dev/v1alpha1
metadata: {name: events}
spec: {selector: {app: events}, ports: [{port: 4222, protocol: nats}]}
`)
	broker := m.proxy(fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: events-1, labels: {app: events}}
spec:
  address: 127.0.0.1
  inbound: [{port: %d, servicePort: 4222, appPort: %d}]
`, ports[0], ns.Addr().(*net.TCPAddr).Port))
	app := m.proxy(fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: app-1, labels: {app: app}}
spec:
  address: 127.0.0.1
  outbound: [{service: events, localPort: %d}]
`, ports[1]))
	pollUntil(t, "the mesh's configuration", func() (bool, string) {
		ok := hasHosts(app, "default/events:4222") && len(app.ListenerAddrs()) > 0 && len(broker.ListenerAddrs()) > 0
		return ok, fmt.Sprint(app.ListenerAddrs(), broker.ListenerAddrs())
	})
	for _, p := range []interface{ StartAdmin(string) error }{app, broker} {
		if err := p.StartAdmin("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	// The first push of a proxy running before the control plane (these
	// share the test's process) is a baseline: let both push twice.
	base := m.pushes()
	pollUntil(t, "pushes", func() (bool, string) { n := m.pushes(); return n >= base+4, strconv.Itoa(n) })

	url := fmt.Sprintf("nats://127.0.0.1:%d", ports[1])
	sub, err := natsgo.Connect(url, natsgo.Name("subscriber"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	var got atomic.Int64
	if _, err := sub.Subscribe("events.*", func(*natsgo.Msg) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, err := natsgo.Connect(url, natsgo.Name("publisher"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	const n = 100
	for range n {
		if err := pub.Publish("events.created", []byte("created")); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "every message delivered", func() (bool, string) { return got.Load() == n, fmt.Sprint(got.Load()) })

	series := func(prefix, dir, subject string) string {
		return fmt.Sprintf(`trellis_nats_messages_total{direction=%q,stat_prefix=%q,subject=%q}`, dir, prefix, subject)
	}
	for _, c := range []struct {
		admin, series string
	}{
		{app.AdminAddr(), series("outbound:default/events:4222", "publish", "events.created")},
		{app.AdminAddr(), series("outbound:default/events:4222", "deliver", "events.*")},
		{broker.AdminAddr(), series("inbound:default/events:4222", "publish", "events.created")},
		{broker.AdminAddr(), series("inbound:default/events:4222", "deliver", "events.*")},
	} {
		if v := promValue(t, c.admin, c.series); v != n {
			t.Errorf("%s = %v, want %d", c.series, v, n)
		}
	}
	if got.Load() != n {
		t.Errorf("delivered %d messages after the counts were read, want %d", got.Load(), n)
	}

	topics := func() map[string]telemetry.TopicRow {
		var res telemetry.TopicResult
		if err := json.Unmarshal([]byte(m.trellis("stat", "topic", "--from", "events:4222", "--window", "30s", "-o", "json")), &res); err != nil {
			t.Fatal(err)
		}
		rows := map[string]telemetry.TopicRow{}
		for _, r := range res.Rows {
			rows[r.Broker+" "+r.Topic] = r
		}
		return rows
	}
	pollUntil(t, "trellis stat topic to count every message", func() (bool, string) {
		rows := topics()
		pub, del := rows["default/events:4222 events.created"], rows["default/events:4222 events.*"]
		return pub.Counts.Produced >= n && del.Counts.Consumed >= n, fmt.Sprintf("%+v", rows)
	})
	rows := topics()
	if r := rows["default/events:4222 events.created"]; r.Via != "nats" || r.Counts != (telemetry.TopicCounts{Produced: n}) || r.PerSecond.Produced <= 0 {
		t.Errorf("events.created: %+v, want %d produced (once: the caller's side) via nats, at a rate", r, n)
	}
	if r := rows["default/events:4222 events.*"]; r.Counts != (telemetry.TopicCounts{Consumed: n}) {
		t.Errorf("events.*: %+v, want %d consumed", r, n)
	}
	if out := m.trellis("stat", "topic", "events.created"); !strings.Contains(out, "default/events:4222   events.created") {
		t.Errorf("trellis stat topic events.created:\n%s", out)
	}
}

// promValue reads one series from a proxy's /stats/prometheus; -1 when
// it is absent.
func promValue(t *testing.T, adminAddr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Logf("%s lacks %s:\n%s", adminAddr, series, body)
	return -1
}
