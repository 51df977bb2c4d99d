package v1alpha1

import (
	"maps"
	"net/netip"
	"path/filepath"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Protocols lists the protocols a Service port may declare.
func Protocols() []Protocol {
	return []Protocol{ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolTCP, ProtocolKafka, ProtocolNATS}
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

func validateMeshSpec(s *MeshSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.TrustDomain != "" {
		errs = append(errs, trustDomain(p.Child("trustDomain"), s.TrustDomain)...)
	}
	if s.Defaults != nil {
		errs = append(errs, validatePolicySpec(s.Defaults, p.Child("defaults"))...)
	}
	if s.AccessLog != nil && s.AccessLog.Path == "" {
		errs = append(errs, field.Required(p.Child("accessLog", "path"), `a file path or "/dev/stdout"`))
	}
	if m := s.MTLS; m != nil {
		mp := p.Child("mtls")
		if m.Mode != "" && !slices.Contains(MTLSModes(), m.Mode) {
			errs = append(errs, field.NotSupported(mp.Child("mode"), m.Mode, MTLSModes()))
		}
		if t := m.CertificateTTL; t != nil && (t.Duration < MinCertificateTTL || t.Duration > MaxCertificateTTL) {
			errs = append(errs, field.Invalid(mp.Child("certificateTTL"), t.Duration.String(), "must be between 5m and 720h (30 days), inclusive"))
		}
	}
	if c := s.CA; c != nil {
		errs = append(errs, validateMeshCA(c, p.Child("ca"))...)
	}
	if a := s.AccessPolicy; a != nil && a.Default != "" && a.Default != AccessAllow && a.Default != AccessDeny {
		errs = append(errs, field.NotSupported(p.Child("accessPolicy", "default"), a.Default, []AccessAction{AccessAllow, AccessDeny}))
	}
	if t := s.Tracing; t != nil {
		errs = append(errs, validateMeshTracing(t, p.Child("tracing"))...)
	}
	if t := s.Tap; t != nil {
		errs = append(errs, validateMeshTap(t, p.Child("tap"))...)
	}
	return errs
}

// MTLSModes lists the mTLS modes a Mesh may set.
func MTLSModes() []MTLSMode { return []MTLSMode{MTLSStrict, MTLSPermissive, MTLSDisabled} }

func validateMeshCA(c *MeshCA, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch c.Type {
	case "", CABuiltin:
		if c.Provided != nil {
			errs = append(errs, field.Forbidden(p.Child("provided"), "only with type provided"))
		}
	case CAProvided:
		pp := p.Child("provided")
		if c.Provided == nil {
			errs = append(errs, field.Required(pp, "certFile and keyFile of the CA"))
			break
		}
		for _, f := range []struct{ name, v string }{{"certFile", c.Provided.CertFile}, {"keyFile", c.Provided.KeyFile}} {
			switch {
			case f.v == "":
				errs = append(errs, field.Required(pp.Child(f.name), "an absolute path on the control plane's host"))
			case !filepath.IsAbs(f.v) || filepath.Clean(f.v) != f.v:
				errs = append(errs, field.Invalid(pp.Child(f.name), f.v, "must be a clean absolute path"))
			}
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), c.Type, []CAType{CABuiltin, CAProvided}))
	}
	return errs
}

// trustDomain checks a SPIFFE trust domain: lower-case letters, digits,
// '.', '-' and '_', at most 255 characters (SPIFFE-ID §2.1).
func trustDomain(p *field.Path, td string) field.ErrorList {
	if len(td) > 255 {
		return field.ErrorList{field.TooLong(p, td, 255)}
	}
	for _, c := range td {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '-' && c != '_' {
			return field.ErrorList{field.Invalid(p, td, "a SPIFFE trust domain may contain only lower-case letters, digits, '.', '-' and '_'")}
		}
	}
	return nil
}

func validateServiceSpec(s *ServiceSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.Selector) == 0 {
		errs = append(errs, field.Required(p.Child("selector"), "an empty selector selects no Dataplane"))
	}
	for _, k := range sortedKeys(s.Selector) {
		v := s.Selector[k]
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(p.Child("selector").Key(k), k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(p.Child("selector").Key(k), v, msg))
		}
	}
	pp := p.Child("ports")
	if len(s.Ports) == 0 {
		errs = append(errs, field.Required(pp, "at least one port"))
	}
	numbers := map[int32]bool{}
	names := map[string]bool{}
	for i, sp := range s.Ports {
		ip := pp.Index(i)
		errs = append(errs, port(ip.Child("port"), sp.Port)...)
		if numbers[sp.Port] {
			errs = append(errs, field.Duplicate(ip.Child("port"), sp.Port))
		}
		numbers[sp.Port] = true
		switch {
		case sp.Name == "" && len(s.Ports) > 1:
			errs = append(errs, field.Required(ip.Child("name"), "required when the Service has several ports"))
		case sp.Name != "":
			errs = append(errs, dnsLabel(ip.Child("name"), sp.Name)...)
			if names[sp.Name] {
				errs = append(errs, field.Duplicate(ip.Child("name"), sp.Name))
			}
			names[sp.Name] = true
		}
		if sp.Protocol != "" && !slices.Contains(Protocols(), sp.Protocol) {
			errs = append(errs, field.NotSupported(ip.Child("protocol"), sp.Protocol, Protocols()))
		}
	}
	return errs
}

func validateDataplaneSpec(s *DataplaneSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	addr, err := netip.ParseAddr(s.Address)
	switch {
	case s.Address == "":
		errs = append(errs, field.Required(p.Child("address"), "the IP other proxies reach this one on"))
	case err != nil || addr.Zone() != "":
		errs = append(errs, field.Invalid(p.Child("address"), s.Address, "must be an IPv4 or IPv6 address"))
	}
	// Inbound listeners bind Address; outbound ones bind 127.0.0.1. On a
	// loopback or unspecified Address they share one port space.
	shared := err == nil && (addr.IsLoopback() || addr.IsUnspecified())
	if s.Identity != "" {
		errs = append(errs, dnsLabel(p.Child("identity"), s.Identity)...)
	}
	errs = append(errs, optPort(p.Child("outboundHTTPPort"), s.OutboundHTTPPort)...)
	inbound := map[int32]bool{}
	for i, in := range s.Inbound {
		ip := p.Child("inbound").Index(i)
		errs = append(errs, port(ip.Child("port"), in.Port)...)
		if inbound[in.Port] {
			errs = append(errs, field.Duplicate(ip.Child("port"), in.Port))
		}
		inbound[in.Port] = true
		if shared && in.Port != 0 && in.Port == s.OutboundHTTPPort {
			errs = append(errs, field.Invalid(ip.Child("port"), in.Port, "clashes with spec.outboundHTTPPort on a loopback address"))
		}
		errs = append(errs, optPort(ip.Child("servicePort"), in.ServicePort)...)
		if in.AppPort == 0 {
			errs = append(errs, field.Required(ip.Child("appPort"), "the application's port"))
		} else {
			errs = append(errs, port(ip.Child("appPort"), in.AppPort)...)
		}
		if in.AppAddress != "" {
			if _, err := netip.ParseAddr(in.AppAddress); err != nil {
				errs = append(errs, field.Invalid(ip.Child("appAddress"), in.AppAddress, "must be an IPv4 or IPv6 address"))
			}
		}
	}
	local := map[int32]bool{}
	for i, out := range s.Outbound {
		op := p.Child("outbound").Index(i)
		if out.Service == "" {
			errs = append(errs, field.Required(op.Child("service"), "the upstream Service's name"))
		} else {
			errs = append(errs, dnsLabel(op.Child("service"), out.Service)...)
		}
		if out.Namespace != "" {
			errs = append(errs, dnsLabel(op.Child("namespace"), out.Namespace)...)
		}
		errs = append(errs, optPort(op.Child("port"), out.Port)...)
		lp := op.Child("localPort")
		if out.LocalPort == 0 {
			errs = append(errs, field.Required(lp, "the port on 127.0.0.1 the application calls"))
			continue
		}
		errs = append(errs, port(lp, out.LocalPort)...)
		switch {
		case local[out.LocalPort]:
			errs = append(errs, field.Duplicate(lp, out.LocalPort))
		case out.LocalPort == s.OutboundHTTPPort:
			errs = append(errs, field.Invalid(lp, out.LocalPort, "clashes with spec.outboundHTTPPort"))
		case shared && inbound[out.LocalPort]:
			errs = append(errs, field.Invalid(lp, out.LocalPort, "clashes with an inbound port on a loopback address"))
		}
		local[out.LocalPort] = true
	}
	errs = append(errs, validateDataplaneKafka(s, shared, p)...)
	return errs
}
