package control_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/trellis-mesh/trellis/internal/control/translator"
	"github.com/trellis-mesh/trellis/internal/echo"
	"github.com/trellis-mesh/trellis/internal/telemetry/trace/tracetest"
)

func tracingMesh(collector string, sampling int) string {
	return fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec:
  mtls: {mode: DISABLED}
  tracing: {collector: "%s", sampling: %d}
`, collector, sampling)
}

// TestMeshTracing drives a real mesh whose Mesh turns tracing on (sampling
// 100, a real OTLP receiver as the collector): a request from web's app
// through web's sidecar and api's sidecar to api's app is one trace of four
// spans, parented hop by hop, named by the sidecars' identity services and
// tagged with the mesh; api's app gets the context of api's client span.
// A change of the Mesh's collector reaches the running sidecars.
func TestMeshTracing(t *testing.T) {
	m := startGMControl(t)
	rcv := tracetest.Start(t)
	ports := freePorts(t, 2) // web's outbound, api-1's inbound
	app := startEcho(t, "api-1")
	m.apply(tracingMesh(rcv.Addr, 100) + `---
kind: Service
apiVersion: trellis.dev/v1alpha1
metadata: {name: api}
spec: {selector: {app: api}, ports: [{port: 80, protocol: http}]}
`)
	dp := func(name, labels, body string) string {
		return fmt.Sprintf("apiVersion: trellis.dev/v1alpha1\nkind: Dataplane\nmetadata: {name: %s, labels: {%s}}\nspec:\n  address: 127.0.0.1\n%s", name, labels, body)
	}
	web := m.proxy(dp("web-1", "app: web", fmt.Sprintf("  outbound: [{service: api, localPort: %d}]\n", ports[0])))
	api := m.proxy(dp("api-1", "app: api", fmt.Sprintf("  inbound: [{port: %d, servicePort: 80, appPort: %d}]\n", ports[1], app)))
	pollUntil(t, "the mesh's configuration", func() (bool, string) {
		ok := hasHosts(web, "default/api:80", translator.TracingCluster) && hasHosts(api, translator.TracingCluster) &&
			len(web.ListenerAddrs()) > 0 && len(api.ListenerAddrs()) > 0
		return ok, fmt.Sprint(web.ListenerAddrs(), api.ListenerAddrs())
	})

	url := fmt.Sprintf("http://127.0.0.1:%d/checkout", ports[0])
	seen := echoGet(t, url)
	spans := rcv.WaitSpans(t, 4, 20*time.Second)
	if len(spans) != 4 {
		t.Fatalf("got %d spans, want 4: %+v", len(spans), spans)
	}
	find := func(service string, kind tracev1.Span_SpanKind) tracetest.Span {
		t.Helper()
		for _, s := range spans {
			if s.Service == service && s.Kind == kind {
				return s
			}
		}
		t.Fatalf("no %v span of %s in %+v", kind, service, spans)
		return tracetest.Span{}
	}
	webServer, webClient := find("web", tracev1.Span_SPAN_KIND_SERVER), find("web", tracev1.Span_SPAN_KIND_CLIENT)
	apiServer, apiClient := find("api", tracev1.Span_SPAN_KIND_SERVER), find("api", tracev1.Span_SPAN_KIND_CLIENT)
	for _, s := range spans {
		if s.TraceID != webServer.TraceID {
			t.Errorf("span %s of %s in trace %s, want one trace %s", s.Name, s.Service, s.TraceID, webServer.TraceID)
		}
		if s.Attrs[translator.TagMesh] != "default" || s.Attrs[translator.TagService] != s.Service {
			t.Errorf("span %s of %s: %s=%q %s=%q, want default and %s", s.Name, s.Service, translator.TagMesh,
				s.Attrs[translator.TagMesh], translator.TagService, s.Attrs[translator.TagService], s.Service)
		}
		if s.Error {
			t.Errorf("span %s of %s has status ERROR", s.Name, s.Service)
		}
	}
	for _, c := range []struct {
		name          string
		child, parent tracetest.Span
	}{
		{"web client", webClient, webServer},
		{"api server", apiServer, webClient},
		{"api client", apiClient, apiServer},
	} {
		if c.child.ParentID != c.parent.SpanID {
			t.Errorf("%s span's parent %q, want %q", c.name, c.child.ParentID, c.parent.SpanID)
		}
	}
	if webServer.ParentID != "" {
		t.Errorf("web's server span has parent %q; the request came without a trace", webServer.ParentID)
	}
	if got := webClient.Attrs["upstream_cluster"]; got != "default/api:80" {
		t.Errorf("web client span upstream_cluster %q, want default/api:80", got)
	}
	if webClient.Name != "router default/api:80 egress" || apiClient.Name != fmt.Sprintf("router inbound:%d egress", ports[1]) {
		t.Errorf("client spans named %q and %q, want the clusters' (docs/tracing.md)", webClient.Name, apiClient.Name)
	}
	tp := seen.Headers.Get("Traceparent")
	if want := "00-" + webServer.TraceID + "-" + apiClient.SpanID + "-01"; tp != want {
		t.Errorf("api's app got traceparent %q, want %q (api's client span, sampled)", tp, want)
	}

	// A new collector on the Mesh reaches both sidecars.
	rcv2 := tracetest.Start(t)
	m.apply(tracingMesh(rcv2.Addr, 100))
	pollUntil(t, "spans at the new collector", func() (bool, string) {
		echoGet(t, url)
		spans := rcv2.Spans()
		services := map[string]bool{}
		for _, s := range spans {
			services[s.Service] = true
		}
		return services["web"] && services["api"], fmt.Sprint(len(spans), " spans of ", services)
	})
}

// echoGet sends a GET and returns what the echo app saw of it.
func echoGet(t *testing.T, url string) echo.RequestInfo {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info echo.RequestInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, %v", url, resp.StatusCode, err)
	}
	if !strings.HasPrefix(info.Name, "api") {
		t.Fatalf("GET %s: answered by %q", url, info.Name)
	}
	return info
}
