package smi

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// Convert translates one decoded SMI document (from Decode) to Trellis
// objects, neither defaulted nor validated (run v1alpha1.Default and
// Validate on them as on any document):
//
//   - A TrafficSplit becomes an HTTPRoute named after the split, attached
//     (parentRef) to the root Service spec.service, with one rule sending to
//     the weighted backends on the root port. With spec.matches naming
//     HTTPRouteGroups, that rule takes their matches and a second rule sends
//     everything else to the root Service, as SMI defines. A root port of
//     protocol tcp, kafka or nats gives a TCPRoute instead (TCPRoute matches
//     restrict the ports). A root Service with several ports gives one
//     route per port, named "<split>-<port name>".
//   - A TrafficTarget becomes an ALLOW AccessPolicy of the same name with
//     one rule: from = the source ServiceAccounts as identity services
//     (from[].service; the namespace of a source is dropped: universal-mode
//     identities have none); to = one operation per HTTPRouteGroup match
//     it names (methods, pathRegex as a regex path, headers as regex
//     header matches) and per SMI TCPRoute (its ports, read as Service
//     ports), or none (every request) without rules. The destination
//     ServiceAccount X is the identity service X: the policy targets the
//     Services of the target's namespace and mesh that select a Dataplane
//     whose IdentityService is X, or, when l holds none, the Service named
//     X.
//   - HTTPRouteGroup and TCPRoute give nothing: they only describe traffic
//     for the splits and targets that name them. Trellis does not store
//     them, so a split or target must come in the same batch as the groups
//     it names (ConvertAll).
//
// l must hold the root Services, and for targets the Services and
// Dataplanes (the store, plus the batch being applied); Convert looks
// HTTPRouteGroups up there too. Every object it returns
// carries the annotation v1alpha1.ConvertedFromAnnotation.
func Convert(doc any, l v1alpha1.Lookup) ([]v1alpha1.Object, error) {
	return convert(doc, l, func(kind, ns, name string) v1alpha1.Object {
		o, _ := l.Get(kind, ns, name)
		return o
	})
}

// ConvertAll converts a batch of SMI documents, resolving the splits' and
// targets' matches against the batch's own HTTPRouteGroups and TCPRoutes
// first and l second. It converts every document and joins their errors, each naming
// its document.
func ConvertAll(docs []any, l v1alpha1.Lookup) ([]v1alpha1.Object, error) {
	specs := map[[3]string]v1alpha1.Object{}
	for _, d := range docs {
		switch o := d.(type) {
		case *HTTPRouteGroup:
			specs[[3]string{KindHTTPRouteGroup, namespace(o), o.Name}] = o
		case *TCPRoute:
			specs[[3]string{KindTCPRoute, namespace(o), o.Name}] = o
		}
	}
	find := func(kind, ns, name string) v1alpha1.Object {
		if o, ok := specs[[3]string{kind, ns, name}]; ok {
			return o
		}
		o, _ := l.Get(kind, ns, name)
		return o
	}
	var out []v1alpha1.Object
	var errs []error
	for _, d := range docs {
		objs, err := convert(d, l, find)
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, objs...)
	}
	return out, errors.Join(errs...)
}

func namespace(o metav1.Object) string { return v1alpha1.NamespaceOf(o) }

func describe(kind string, o metav1.Object) string {
	return kind + " " + namespace(o) + "/" + o.GetName()
}

func convert(doc any, l v1alpha1.Lookup, find func(kind, ns, name string) v1alpha1.Object) ([]v1alpha1.Object, error) {
	switch o := doc.(type) {
	case *TrafficSplit:
		objs, err := convertSplit(o, l, find)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", describe(KindTrafficSplit, o), err)
		}
		return objs, nil
	case *HTTPRouteGroup, *TCPRoute:
		return nil, nil
	case *TrafficTarget:
		p, err := convertTarget(o, l, find)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", describe(KindTrafficTarget, o), err)
		}
		return []v1alpha1.Object{p}, nil
	}
	return nil, fmt.Errorf("convert: %T is not an SMI document", doc)
}

// splitMatches is what a split's spec.matches select.
type splitMatches struct {
	http     []gwv1.HTTPRouteMatch
	tcpPorts []int32 // ports TCPRoute matches name
	tcpAll   bool    // a TCPRoute match without ports
}

func (m splitMatches) any() bool { return len(m.http) > 0 || len(m.tcpPorts) > 0 || m.tcpAll }

func convertSplit(ts *TrafficSplit, l v1alpha1.Lookup, find func(kind, ns, name string) v1alpha1.Object) ([]v1alpha1.Object, error) {
	ns := namespace(ts)
	switch {
	case ts.Spec.Service == "":
		return nil, errors.New("spec.service: Required value")
	case len(ts.Spec.Backends) == 0:
		return nil, errors.New("spec.backends: Required value")
	}
	for i, b := range ts.Spec.Backends {
		if b.Weight < 0 || b.Weight > 1_000_000 {
			return nil, fmt.Errorf("spec.backends[%d].weight: Invalid value: %d: must be between 0 and 1000000, inclusive", i, b.Weight)
		}
	}
	o, _ := l.Get(v1alpha1.KindService, ns, ts.Spec.Service)
	root, ok := o.(*v1alpha1.Service)
	if !ok {
		return nil, fmt.Errorf("spec.service: Service %s/%s not found: the route needs its ports and protocols, so apply the Service first or in the same batch", ns, ts.Spec.Service)
	}
	var m splitMatches
	for i, ref := range ts.Spec.Matches {
		p := fmt.Sprintf("spec.matches[%d]", i)
		if ref.APIGroup != nil && *ref.APIGroup != SpecsGroup {
			return nil, fmt.Errorf("%s.apiGroup: Unsupported value: %q: supported values: %q", p, *ref.APIGroup, SpecsGroup)
		}
		switch ref.Kind {
		case KindHTTPRouteGroup:
			g, ok := find(KindHTTPRouteGroup, ns, ref.Name).(*HTTPRouteGroup)
			if !ok {
				return nil, fmt.Errorf("%s: HTTPRouteGroup %s/%s not found: Trellis does not store HTTPRouteGroups, apply it in the same batch as the TrafficSplit", p, ns, ref.Name)
			}
			m.http = append(m.http, httpMatches(g)...)
		case KindTCPRoute:
			r, ok := find(KindTCPRoute, ns, ref.Name).(*TCPRoute)
			if !ok {
				return nil, fmt.Errorf("%s: SMI TCPRoute %s/%s not found: Trellis does not store SMI TCPRoutes, apply it in the same batch as the TrafficSplit", p, ns, ref.Name)
			}
			m.tcpAll = m.tcpAll || len(r.Spec.Matches.Ports) == 0
			for _, port := range r.Spec.Matches.Ports {
				m.tcpPorts = append(m.tcpPorts, int32(port))
			}
		default:
			return nil, fmt.Errorf("%s.kind: Unsupported value: %q: supported values: %q, %q", p, ref.Kind, KindHTTPRouteGroup, KindTCPRoute)
		}
	}

	var out []v1alpha1.Object
	for _, sp := range root.Spec.Ports {
		name := ts.Name
		var parentPort *int32
		if len(root.Spec.Ports) > 1 {
			name = ts.Name + "-" + portName(sp)
			parentPort = &sp.Port
		}
		meta := metav1.ObjectMeta{
			Name: name, Namespace: ns, Labels: ts.Labels,
			Annotations: map[string]string{v1alpha1.ConvertedFromAnnotation: ts.APIVersion + "/" + KindTrafficSplit + "/" + ts.Name},
		}
		parents := []gwv1.ParentReference{{Group: ptr(gwv1.Group("")), Kind: ptr(gwv1.Kind(v1alpha1.KindService)), Name: gwv1.ObjectName(root.Name), Port: parentPort}}
		tcpProto := slices.Contains([]v1alpha1.Protocol{v1alpha1.ProtocolTCP, v1alpha1.ProtocolKafka, v1alpha1.ProtocolNATS}, sp.Protocol)
		if m.any() && !m.tcpAll && !slices.Contains(m.tcpPorts, sp.Port) && (tcpProto || len(m.http) == 0) {
			continue // the split's matches leave this port to the root Service
		}
		if tcpProto {
			out = append(out, &gwv1.TCPRoute{
				TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GatewayAPIVersion, Kind: v1alpha1.KindTCPRoute}, ObjectMeta: meta,
				Spec: gwv1.TCPRouteSpec{CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: parents},
					Rules: []gwv1.TCPRouteRule{{BackendRefs: backendRefs(ts.Spec.Backends, sp.Port)}}},
			})
			continue
		}
		rules := []gwv1.HTTPRouteRule{{BackendRefs: httpBackendRefs(backendRefs(ts.Spec.Backends, sp.Port))}}
		if len(m.http) > 0 {
			rules[0].Matches = m.http
			rest := []TrafficSplitBackend{{Service: root.Name, Weight: 1}}
			rules = append(rules, gwv1.HTTPRouteRule{BackendRefs: httpBackendRefs(backendRefs(rest, sp.Port))})
		}
		out = append(out, &gwv1.HTTPRoute{
			TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GatewayAPIVersion, Kind: v1alpha1.KindHTTPRoute}, ObjectMeta: meta,
			Spec: gwv1.HTTPRouteSpec{CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: parents}, Rules: rules},
		})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("spec.matches: no port of Service %s/%s is matched", ns, root.Name)
	}
	return out, nil
}

func portName(sp v1alpha1.ServicePort) string {
	if sp.Name != "" {
		return sp.Name
	}
	return strconv.Itoa(int(sp.Port))
}

func backendRefs(bs []TrafficSplitBackend, port int32) []gwv1.BackendRef {
	out := make([]gwv1.BackendRef, len(bs))
	for i, b := range bs {
		out[i] = gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{
				Group: ptr(gwv1.Group("")), Kind: ptr(gwv1.Kind(v1alpha1.KindService)),
				Name: gwv1.ObjectName(b.Service), Port: ptr(port),
			},
			Weight: ptr(int32(b.Weight)),
		}
	}
	return out
}

func httpBackendRefs(bs []gwv1.BackendRef) []gwv1.HTTPBackendRef {
	out := make([]gwv1.HTTPBackendRef, len(bs))
	for i, b := range bs {
		out[i] = gwv1.HTTPBackendRef{BackendRef: b}
	}
	return out
}

// httpMatches turns an HTTPRouteGroup's matches into Gateway API matches:
// pathRegex becomes a RegularExpression path match, headers
// RegularExpression header matches, and each listed method (other than
// "*") its own match, since a Gateway API match names one method.
func httpMatches(g *HTTPRouteGroup) []gwv1.HTTPRouteMatch {
	var out []gwv1.HTTPRouteMatch
	for _, m := range g.Spec.Matches {
		var base gwv1.HTTPRouteMatch
		if m.PathRegex != "" {
			base.Path = &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchRegularExpression), Value: ptr(m.PathRegex)}
		}
		names := make([]string, 0, len(m.Headers))
		for k := range m.Headers {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			base.Headers = append(base.Headers, gwv1.HTTPHeaderMatch{
				Type: ptr(gwv1.HeaderMatchRegularExpression), Name: gwv1.HTTPHeaderName(k), Value: m.Headers[k],
			})
		}
		if len(m.Methods) == 0 || slices.Contains(m.Methods, "*") {
			out = append(out, base)
			continue
		}
		for _, method := range m.Methods {
			mm := base
			mm.Headers = slices.Clone(base.Headers)
			mm.Method = ptr(gwv1.HTTPMethod(method))
			out = append(out, mm)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }
