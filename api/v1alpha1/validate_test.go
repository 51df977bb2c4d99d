package v1alpha1_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

// vcase is one validation case: an object and the exact errors Validate
// must return after Default (nil: valid).
type vcase struct {
	name string
	obj  api.Object
	want []string
}

func runValidate(t *testing.T, cases []vcase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api.Default(tc.obj)
			var got []string
			for _, e := range api.Validate(tc.obj) {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("Validate (-want +got):\n%s", diff)
			}
		})
	}
}

// build decodes a valid base document and applies mutations to it.
func build[T api.Object](doc string, muts ...func(T)) api.Object {
	obj, err := api.Decode([]byte(doc))
	if err != nil {
		panic(err)
	}
	o := obj.(T)
	for _, m := range muts {
		m(o)
	}
	return o
}

func mesh(m ...func(*api.Mesh)) api.Object {
	return build("apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: demo}\n", m...)
}

func service(m ...func(*api.Service)) api.Object {
	return build(serviceYAML, m...)
}

const dataplaneYAML = `apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata:
  name: web-1
  labels: {app: web}
spec:
  address: 127.0.0.1
  inbound:
  - {port: 10001, appPort: 8080}
  outbound:
  - {service: api, localPort: 15001}
  outboundHTTPPort: 15000
`

func dataplane(m ...func(*api.Dataplane)) api.Object { return build(dataplaneYAML, m...) }

func u32(v uint32) *uint32 { return &v }

func TestValidateMeta(t *testing.T) {
	runValidate(t, []vcase{
		{"valid", service(), nil},
		{"name required", service(func(s *api.Service) { s.Name = "" }), []string{"metadata.name: Required value"}},
		{"service name is a DNS label", service(func(s *api.Service) { s.Name = "api.v1" }),
			[]string{`metadata.name: Invalid value: "api.v1": must not contain dots`}},
		{"dataplane name may be a subdomain", dataplane(func(d *api.Dataplane) { d.Name = "web-1.host-a" }), nil},
		{"dataplane name not upper case", dataplane(func(d *api.Dataplane) { d.Name = "Web" }),
			[]string{`metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`}},
		{"namespace is a label", service(func(s *api.Service) { s.Namespace = "Shop" }),
			[]string{`metadata.namespace: Invalid value: "Shop": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`}},
		{"mesh is cluster-scoped", mesh(func(m *api.Mesh) { m.Namespace = "default" }),
			[]string{"metadata.namespace: Forbidden: Mesh is cluster-scoped"}},
		{"mesh has no mesh label", mesh(func(m *api.Mesh) { m.Labels = map[string]string{api.MeshLabel: "x"} }),
			[]string{"metadata.labels[trellis.dev/mesh]: Forbidden: a Mesh belongs to no mesh"}},
		{"mesh label is a DNS label", service(func(s *api.Service) { s.Labels = map[string]string{api.MeshLabel: "a_b"} }),
			[]string{`metadata.labels[trellis.dev/mesh]: Invalid value: "a_b": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`}},
		{"label value", service(func(s *api.Service) { s.Labels = map[string]string{"app": "-x"} }),
			[]string{`metadata.labels[app]: Invalid value: "-x": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`}},
		{"annotation key", service(func(s *api.Service) { s.Annotations = map[string]string{"a b": ""} }),
			[]string{`metadata.annotations[a b]: Invalid value: "a b": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`}},
	})
}

func TestValidateMesh(t *testing.T) {
	runValidate(t, []vcase{
		{"valid with defaults", mesh(func(m *api.Mesh) {
			m.Spec.Defaults = &api.PolicySpec{Timeouts: &api.Timeouts{Request: &metav1.Duration{}}}
			m.Spec.AccessLog = &api.AccessLog{Path: "/dev/stdout"}
		}), nil},
		{"trust domain chars", mesh(func(m *api.Mesh) { m.Spec.TrustDomain = "Demo.local" }),
			[]string{`spec.trustDomain: Invalid value: "Demo.local": a SPIFFE trust domain may contain only lower-case letters, digits, '.', '-' and '_'`}},
		{"trust domain with underscore", mesh(func(m *api.Mesh) { m.Spec.TrustDomain = "my_mesh.example" }), nil},
		{"defaults validated", mesh(func(m *api.Mesh) {
			m.Spec.Defaults = &api.PolicySpec{Timeouts: &api.Timeouts{Connect: &metav1.Duration{}}}
		}), []string{`spec.defaults.timeouts.connect: Invalid value: "0s": must be > 0`}},
		{"access log path", mesh(func(m *api.Mesh) { m.Spec.AccessLog = &api.AccessLog{} }),
			[]string{`spec.accessLog.path: Required value: a file path or "/dev/stdout"`}},
	})
}

func TestValidateService(t *testing.T) {
	runValidate(t, []vcase{
		{"valid", service(), nil},
		{"two named ports", service(func(s *api.Service) {
			s.Spec.Ports = []api.ServicePort{{Name: "http", Port: 80}, {Name: "grpc", Port: 9090, Protocol: api.ProtocolGRPC}}
		}), nil},
		{"no ports", service(func(s *api.Service) { s.Spec.Ports = nil }), []string{"spec.ports: Required value: at least one port"}},
		{"port range", service(func(s *api.Service) { s.Spec.Ports[0].Port = 70000 }),
			[]string{"spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"}},
		{"port zero", service(func(s *api.Service) { s.Spec.Ports[0].Port = 0 }),
			[]string{"spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"}},
		{"duplicate port and name", service(func(s *api.Service) {
			s.Spec.Ports = []api.ServicePort{{Name: "a", Port: 80}, {Name: "a", Port: 80}}
		}), []string{"spec.ports[1].port: Duplicate value: 80", `spec.ports[1].name: Duplicate value: "a"`}},
		{"names required with several ports", service(func(s *api.Service) {
			s.Spec.Ports = []api.ServicePort{{Port: 80}, {Name: "b", Port: 81}}
		}), []string{"spec.ports[0].name: Required value: required when the Service has several ports"}},
		{"protocol", service(func(s *api.Service) { s.Spec.Ports[0].Protocol = "h2c" }),
			[]string{`spec.ports[0].protocol: Unsupported value: "h2c": supported values: "http", "http2", "grpc", "tcp", "kafka", "nats"`}},
		{"empty selector", service(func(s *api.Service) { s.Spec.Selector = nil }),
			[]string{"spec.selector: Required value: an empty selector selects no Dataplane"}},
		{"selector key", service(func(s *api.Service) { s.Spec.Selector = map[string]string{"/app": "x"} }),
			[]string{`spec.selector[/app]: Invalid value: "/app": prefix part must be non-empty`}},
	})
}

func TestValidateDataplane(t *testing.T) {
	runValidate(t, []vcase{
		{"valid", dataplane(), nil},
		{"address required", dataplane(func(d *api.Dataplane) { d.Spec.Address = "" }),
			[]string{"spec.address: Required value: the IP other proxies reach this one on"}},
		{"address is an IP", dataplane(func(d *api.Dataplane) { d.Spec.Address = "web.local" }),
			[]string{`spec.address: Invalid value: "web.local": must be an IPv4 or IPv6 address`}},
		{"ipv6", dataplane(func(d *api.Dataplane) { d.Spec.Address = "fd00::1" }), nil},
		{"inbound port range and duplicate", dataplane(func(d *api.Dataplane) {
			d.Spec.Inbound = []api.Inbound{{Port: 0, AppPort: 1}, {Port: 10001, AppPort: 2}, {Port: 10001, AppPort: 3}}
		}), []string{
			"spec.inbound[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
			"spec.inbound[2].port: Duplicate value: 10001",
		}},
		{"appPort required", dataplane(func(d *api.Dataplane) { d.Spec.Inbound[0].AppPort = 0 }),
			[]string{"spec.inbound[0].appPort: Required value: the application's port"}},
		{"appPort range", dataplane(func(d *api.Dataplane) { d.Spec.Inbound[0].AppPort = -1 }),
			[]string{"spec.inbound[0].appPort: Invalid value: -1: must be between 1 and 65535, inclusive"}},
		{"servicePort range", dataplane(func(d *api.Dataplane) { d.Spec.Inbound[0].ServicePort = 65536 }),
			[]string{"spec.inbound[0].servicePort: Invalid value: 65536: must be between 1 and 65535, inclusive"}},
		{"appAddress", dataplane(func(d *api.Dataplane) { d.Spec.Inbound[0].AppAddress = "localhost" }),
			[]string{`spec.inbound[0].appAddress: Invalid value: "localhost": must be an IPv4 or IPv6 address`}},
		{"outbound service required", dataplane(func(d *api.Dataplane) { d.Spec.Outbound[0].Service = "" }),
			[]string{"spec.outbound[0].service: Required value: the upstream Service's name"}},
		{"outbound localPort required", dataplane(func(d *api.Dataplane) { d.Spec.Outbound[0].LocalPort = 0 }),
			[]string{"spec.outbound[0].localPort: Required value: the port on 127.0.0.1 the application calls"}},
		{"outbound localPort unique", dataplane(func(d *api.Dataplane) {
			d.Spec.Outbound = append(d.Spec.Outbound, api.Outbound{Service: "db", LocalPort: 15001})
		}), []string{"spec.outbound[1].localPort: Duplicate value: 15001"}},
		{"outbound localPort vs outboundHTTPPort", dataplane(func(d *api.Dataplane) { d.Spec.Outbound[0].LocalPort = 15000 }),
			[]string{"spec.outbound[0].localPort: Invalid value: 15000: clashes with spec.outboundHTTPPort"}},
		{"outbound localPort vs inbound on loopback", dataplane(func(d *api.Dataplane) { d.Spec.Outbound[0].LocalPort = 10001 }),
			[]string{"spec.outbound[0].localPort: Invalid value: 10001: clashes with an inbound port on a loopback address"}},
		{"inbound vs outboundHTTPPort on loopback", dataplane(func(d *api.Dataplane) { d.Spec.OutboundHTTPPort = 10001 }),
			[]string{"spec.inbound[0].port: Invalid value: 10001: clashes with spec.outboundHTTPPort on a loopback address"}},
		{"inbound may equal outbound on another address", dataplane(func(d *api.Dataplane) {
			d.Spec.Address = "10.0.0.5"
			d.Spec.Outbound[0].LocalPort = 10001
		}), nil},
		{"outboundHTTPPort range", dataplane(func(d *api.Dataplane) { d.Spec.OutboundHTTPPort = -5 }),
			[]string{"spec.outboundHTTPPort: Invalid value: -5: must be between 1 and 65535, inclusive"}},
		{"outbound namespace and port", dataplane(func(d *api.Dataplane) {
			d.Spec.Outbound[0].Namespace = "A"
			d.Spec.Outbound[0].Port = 99999
		}), []string{
			`spec.outbound[0].namespace: Invalid value: "A": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
			"spec.outbound[0].port: Invalid value: 99999: must be between 1 and 65535, inclusive",
		}},
	})
}

func TestDefault(t *testing.T) {
	d := dataplane().(*api.Dataplane)
	api.Default(d)
	if d.Namespace != "default" || d.Labels[api.MeshLabel] != "default" || d.Labels["app"] != "web" {
		t.Fatalf("metadata not defaulted: %+v", d.ObjectMeta)
	}
	if in := d.Spec.Inbound[0]; in.ServicePort != 10001 || in.AppAddress != "127.0.0.1" {
		t.Fatalf("inbound not defaulted: %+v", in)
	}
	s := service().(*api.Service)
	api.Default(s)
	if s.Spec.Ports[0].Protocol != api.ProtocolHTTP {
		t.Fatalf("protocol = %q", s.Spec.Ports[0].Protocol)
	}
	m := mesh().(*api.Mesh)
	m.TypeMeta = metav1.TypeMeta{}
	api.Default(m)
	if m.Spec.TrustDomain != "demo.trellis.local" || m.Namespace != "" || m.Labels != nil || m.Kind != "Mesh" || m.APIVersion != api.APIVersion {
		t.Fatalf("mesh defaulted to %+v", m)
	}
	m.Spec.TrustDomain = "corp.example"
	api.Default(m)
	if m.Spec.TrustDomain != "corp.example" {
		t.Fatal("Default overwrote a set trust domain")
	}
}

func TestDefaultIdempotent(t *testing.T) {
	for _, obj := range []api.Object{mesh(), service(), dataplane(), policy(), access(), httpRoute(), grpcRoute(), tcpRoute()} {
		api.Default(obj)
		once, _ := api.Encode(obj)
		api.Default(obj)
		twice, _ := api.Encode(obj)
		if diff := cmp.Diff(string(once), string(twice)); diff != "" {
			t.Errorf("%s: Default not idempotent:\n%s", api.KindOf(obj), diff)
		}
	}
}
