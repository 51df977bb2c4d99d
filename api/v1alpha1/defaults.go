package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// DefaultAppAddress is the application address of an Inbound that names
// none.
const DefaultAppAddress = "127.0.0.1"

// TrustDomainSuffix makes a Mesh's default trust domain: "<name>" + suffix.
const TrustDomainSuffix = ".trellis.local"

// Default fills in what a document may leave out, in place: apiVersion and
// kind; the namespace (DefaultNamespace) of namespaced kinds; the MeshLabel
// (DefaultMesh) of every kind but Mesh; a Mesh's trust domain; a Service
// port's protocol (http); an Inbound's servicePort (its port) and
// appAddress (127.0.0.1); and on routes the defaults the Gateway API CRDs
// declare (backendRef group "", kind Service, weight 1; a rule without
// matches matches path prefix "/"; match types Exact, path type
// PathPrefix); a Mesh's mtls (mode STRICT, certificateTTL 24h), ca (type
// builtin), accessPolicy (default ALLOW) and tracing.sampling (1); an
// AccessPolicy source's mesh (the policy's). A Dataplane's identity is not
// written: IdentityService computes it. Default is idempotent and never overwrites a set field.
func Default(obj Object) {
	kind := KindOf(obj)
	info, ok := kindInfo(kind)
	if !ok {
		return
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk(info.APIVersion, kind))
	if info.Namespaced && obj.GetNamespace() == "" {
		obj.SetNamespace(DefaultNamespace)
	}
	if kind != KindMesh && obj.GetLabels()[MeshLabel] == "" {
		l := obj.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		l[MeshLabel] = DefaultMesh
		obj.SetLabels(l)
	}
	switch o := obj.(type) {
	case *Mesh:
		if o.Spec.TrustDomain == "" && o.Name != "" {
			o.Spec.TrustDomain = o.Name + TrustDomainSuffix
		}
		defaultMesh(&o.Spec)
	case *Service:
		for i := range o.Spec.Ports {
			if o.Spec.Ports[i].Protocol == "" {
				o.Spec.Ports[i].Protocol = ProtocolHTTP
			}
		}
	case *Dataplane:
		for i := range o.Spec.Inbound {
			in := &o.Spec.Inbound[i]
			if in.ServicePort == 0 {
				in.ServicePort = in.Port
			}
			if in.AppAddress == "" {
				in.AppAddress = DefaultAppAddress
			}
		}
	case *AccessPolicy:
		mesh := MeshOf(o)
		for i := range o.Spec.Rules {
			for j := range o.Spec.Rules[i].From {
				if f := &o.Spec.Rules[i].From[j]; f.Service != "" && f.Mesh == "" {
					f.Mesh = mesh
				}
			}
		}
	case *gwv1.HTTPRoute:
		defaultHTTPRoute(&o.Spec)
	case *gwv1.GRPCRoute:
		defaultGRPCRoute(&o.Spec)
	case *gwv1.TCPRoute:
		for i := range o.Spec.Rules {
			for j := range o.Spec.Rules[i].BackendRefs {
				defaultBackendRef(&o.Spec.Rules[i].BackendRefs[j])
			}
		}
	}
}

func defaultMesh(s *MeshSpec) {
	if s.MTLS == nil {
		s.MTLS = &MTLS{}
	}
	if s.MTLS.Mode == "" {
		s.MTLS.Mode = MTLSStrict
	}
	if s.MTLS.CertificateTTL == nil {
		s.MTLS.CertificateTTL = &metav1.Duration{Duration: DefaultCertificateTTL}
	}
	if s.CA == nil {
		s.CA = &MeshCA{}
	}
	if s.CA.Type == "" {
		s.CA.Type = CABuiltin
	}
	if s.AccessPolicy == nil {
		s.AccessPolicy = &MeshAccessPolicy{}
	}
	if s.AccessPolicy.Default == "" {
		s.AccessPolicy.Default = AccessAllow
	}
	defaultMeshTracing(s.Tracing)
}

func defaultHTTPRoute(s *gwv1.HTTPRouteSpec) {
	for i := range s.Rules {
		r := &s.Rules[i]
		if len(r.Matches) == 0 {
			r.Matches = []gwv1.HTTPRouteMatch{{}}
		}
		for j := range r.Matches {
			m := &r.Matches[j]
			if m.Path == nil {
				m.Path = &gwv1.HTTPPathMatch{}
			}
			if m.Path.Type == nil {
				m.Path.Type = ptr(gwv1.PathMatchPathPrefix)
			}
			if m.Path.Value == nil {
				m.Path.Value = ptr("/")
			}
			for k := range m.Headers {
				if m.Headers[k].Type == nil {
					m.Headers[k].Type = ptr(gwv1.HeaderMatchExact)
				}
			}
			for k := range m.QueryParams {
				if m.QueryParams[k].Type == nil {
					m.QueryParams[k].Type = ptr(gwv1.QueryParamMatchExact)
				}
			}
		}
		defaultHTTPFilters(r.Filters)
		for j := range r.BackendRefs {
			defaultBackendRef(&r.BackendRefs[j].BackendRef)
			defaultHTTPFilters(r.BackendRefs[j].Filters)
		}
	}
}

func defaultHTTPFilters(fs []gwv1.HTTPRouteFilter) {
	for i := range fs {
		if m := fs[i].RequestMirror; m != nil {
			defaultObjectRef(&m.BackendRef)
			if f := m.Fraction; f != nil && f.Denominator == nil {
				f.Denominator = ptr(int32(100))
			}
		}
		if r := fs[i].RequestRedirect; r != nil && r.StatusCode == nil {
			r.StatusCode = ptr(302)
		}
	}
}

func defaultGRPCRoute(s *gwv1.GRPCRouteSpec) {
	for i := range s.Rules {
		r := &s.Rules[i]
		for j := range r.Matches {
			m := &r.Matches[j]
			if m.Method != nil && m.Method.Type == nil {
				m.Method.Type = ptr(gwv1.GRPCMethodMatchExact)
			}
			for k := range m.Headers {
				if m.Headers[k].Type == nil {
					m.Headers[k].Type = ptr(gwv1.GRPCHeaderMatchExact)
				}
			}
		}
		defaultGRPCFilters(r.Filters)
		for j := range r.BackendRefs {
			defaultBackendRef(&r.BackendRefs[j].BackendRef)
			defaultGRPCFilters(r.BackendRefs[j].Filters)
		}
	}
}

func defaultGRPCFilters(fs []gwv1.GRPCRouteFilter) {
	for i := range fs {
		if m := fs[i].RequestMirror; m != nil {
			defaultObjectRef(&m.BackendRef)
			if f := m.Fraction; f != nil && f.Denominator == nil {
				f.Denominator = ptr(int32(100))
			}
		}
	}
}

func defaultBackendRef(b *gwv1.BackendRef) {
	defaultObjectRef(&b.BackendObjectReference)
	if b.Weight == nil {
		b.Weight = ptr(int32(1))
	}
}

func defaultObjectRef(b *gwv1.BackendObjectReference) {
	if b.Group == nil {
		b.Group = ptr(gwv1.Group(""))
	}
	if b.Kind == nil {
		b.Kind = ptr(gwv1.Kind(KindService))
	}
}

func ptr[T any](v T) *T { return &v }
