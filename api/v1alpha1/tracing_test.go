package v1alpha1_test

import (
	"strings"
	"testing"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

func f64(v float64) *float64 { return &v }

func TestValidateMeshTracing(t *testing.T) {
	tracing := func(tr *api.MeshTracing) func(*api.Mesh) {
		return func(m *api.Mesh) { m.Spec.Tracing = tr }
	}
	runValidate(t, []vcase{
		{"ip collector", mesh(tracing(&api.MeshTracing{Collector: "10.0.0.5:4317"})), nil},
		{"dns collector, sampling 0", mesh(tracing(&api.MeshTracing{Collector: "otel-collector.observability:4317", Sampling: f64(0)})), nil},
		{"ipv6 collector, sampling 100", mesh(tracing(&api.MeshTracing{Collector: "[fd00::1]:4317", Sampling: f64(100)})), nil},
		{"fractional sampling", mesh(tracing(&api.MeshTracing{Collector: "otel:4317", Sampling: f64(0.1)})), nil},
		{"collector required", mesh(tracing(&api.MeshTracing{})),
			[]string{`spec.tracing.collector: Required value: "host:port" of an OTLP/gRPC receiver`}},
		{"no port", mesh(tracing(&api.MeshTracing{Collector: "otel"})),
			[]string{`spec.tracing.collector: Invalid value: "otel": must be "host:port" (an IPv6 address in brackets)`}},
		{"bad port", mesh(tracing(&api.MeshTracing{Collector: "otel:0"})),
			[]string{`spec.tracing.collector: Invalid value: "otel:0": the port must be between 1 and 65535`}},
		{"port not a number", mesh(tracing(&api.MeshTracing{Collector: "otel:grpc"})),
			[]string{`spec.tracing.collector: Invalid value: "otel:grpc": the port must be between 1 and 65535`}},
		{"bad host", mesh(tracing(&api.MeshTracing{Collector: "Otel_Collector:4317"})),
			[]string{`spec.tracing.collector: Invalid value: "Otel_Collector:4317": the host must be an IP address or a DNS name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`}},
		{"unspecified ip", mesh(tracing(&api.MeshTracing{Collector: "0.0.0.0:4317"})),
			[]string{`spec.tracing.collector: Invalid value: "0.0.0.0:4317": the host must be a routable IP address or a DNS name`}},
		{"sampling out of range, collector missing", mesh(tracing(&api.MeshTracing{Sampling: f64(101)})), []string{
			`spec.tracing.sampling: Invalid value: 101: must be between 0 and 100, inclusive`,
			`spec.tracing.collector: Required value: "host:port" of an OTLP/gRPC receiver`,
		}},
		{"negative sampling", mesh(tracing(&api.MeshTracing{Collector: "otel:4317", Sampling: f64(-1)})),
			[]string{`spec.tracing.sampling: Invalid value: -1: must be between 0 and 100, inclusive`}},
	})
}

func TestDefaultMeshTracing(t *testing.T) {
	m := mesh(func(m *api.Mesh) { m.Spec.Tracing = &api.MeshTracing{Collector: "otel:4317"} }).(*api.Mesh)
	api.Default(m)
	if s := m.Spec.Tracing.Sampling; s == nil || *s != api.DefaultTracingSampling {
		t.Errorf("sampling after Default = %v, want %v", s, api.DefaultTracingSampling)
	}
	zero := mesh(func(m *api.Mesh) { m.Spec.Tracing = &api.MeshTracing{Collector: "otel:4317", Sampling: f64(0)} }).(*api.Mesh)
	api.Default(zero)
	if got := api.TracingSamplingOf(zero.Spec.Tracing); got != 0 {
		t.Errorf("an explicit sampling 0 became %v", got)
	}
	if got := api.TracingSamplingOf(nil); got != api.DefaultTracingSampling {
		t.Errorf("TracingSamplingOf(nil) = %v", got)
	}
	plain := mesh().(*api.Mesh)
	api.Default(plain)
	if plain.Spec.Tracing != nil {
		t.Errorf("Default turned tracing on: %+v", plain.Spec.Tracing)
	}
}

func TestMeshTracingMessaging(t *testing.T) {
	const doc = `apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: shop}
spec:
  tracing:
    collector: otel:4317
    messaging: {nats: true, kafka: true}
`
	o, err := api.Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	m := o.(*api.Mesh)
	api.Default(m)
	if errs := api.Validate(m); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	if nats, kafka := api.MessagingTraceOf(m.Spec.Tracing); !nats || !kafka {
		t.Fatalf("MessagingTraceOf = %v, %v; want both on", nats, kafka)
	}
	if nats, kafka := api.MessagingTraceOf(&api.MeshTracing{Collector: "otel:4317"}); nats || kafka {
		t.Fatal("messaging trace context is on without spec.tracing.messaging")
	}
	if nats, kafka := api.MessagingTraceOf(nil); nats || kafka {
		t.Fatal("messaging trace context is on without spec.tracing")
	}
	_, err = api.Decode([]byte(strings.Replace(doc, "kafka: true", "amqp: true", 1)))
	if err == nil || !strings.Contains(err.Error(), "spec.tracing.messaging.amqp: unknown field") {
		t.Fatalf("an unknown protocol: error %v", err)
	}
}
