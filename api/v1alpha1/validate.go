package v1alpha1

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Validate checks one object on its own (references to other objects are
// Conditions' business) and returns every violation at once, each with its
// field path:
//
//	spec.rules[0].backendRefs[1].weight: Invalid value: -1: must be >= 0
//
// Validate expects a defaulted object (see Default) but accepts one that is
// not: an unset field it would default is read as its default. An empty
// list means the object is valid.
func Validate(obj Object) field.ErrorList {
	kind := KindOf(obj)
	if kind == "" {
		return field.ErrorList{field.InternalError(nil, fmt.Errorf("%T is not a Trellis kind", obj))}
	}
	info, _ := kindInfo(kind)
	errs := validateMeta(obj, info)
	spec := field.NewPath("spec")
	switch o := obj.(type) {
	case *Mesh:
		errs = append(errs, validateMeshSpec(&o.Spec, spec)...)
	case *Service:
		errs = append(errs, validateServiceSpec(&o.Spec, spec)...)
	case *Dataplane:
		errs = append(errs, validateDataplaneSpec(&o.Spec, spec)...)
		errs = append(errs, validateDataplaneBridge(o.Spec.Bridge, spec.Child("bridge"))...)
	case *TrafficPolicy:
		errs = append(errs, validateTrafficPolicySpec(&o.Spec, spec)...)
	case *AccessPolicy:
		errs = append(errs, validateAccessPolicySpec(&o.Spec, spec)...)
	case *Broker:
		errs = append(errs, validateBrokerSpec(&o.Spec, spec)...)
	case *Subscription:
		errs = append(errs, validateSubscriptionSpec(&o.Spec, spec)...)
	case *gwv1.HTTPRoute:
		errs = append(errs, validateHTTPRouteSpec(&o.Spec, spec)...)
	case *gwv1.GRPCRoute:
		errs = append(errs, validateGRPCRouteSpec(&o.Spec, spec)...)
	case *gwv1.TCPRoute:
		errs = append(errs, validateTCPRouteSpec(&o.Spec, spec)...)
	}
	return errs
}

// validateMeta checks metadata: names, namespace, labels, annotations.
// Mesh and Service names become host names and SPIFFE path segments, so
// they are DNS-1123 labels; other names are DNS-1123 subdomains.
func validateMeta(obj Object, info KindInfo) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("metadata")
	switch name := obj.GetName(); {
	case name == "":
		errs = append(errs, field.Required(p.Child("name"), ""))
	case info.Kind == KindMesh || info.Kind == KindService:
		errs = append(errs, dnsLabel(p.Child("name"), name)...)
	default:
		errs = append(errs, dnsSubdomain(p.Child("name"), name)...)
	}
	if ns := obj.GetNamespace(); ns != "" {
		if !info.Namespaced {
			errs = append(errs, field.Forbidden(p.Child("namespace"), info.Kind+" is cluster-scoped"))
		} else {
			errs = append(errs, dnsLabel(p.Child("namespace"), ns)...)
		}
	}
	for _, k := range sortedKeys(obj.GetLabels()) {
		v := obj.GetLabels()[k]
		lp := p.Child("labels").Key(k)
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(lp, k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(lp, v, msg))
		}
		if k == MeshLabel {
			if info.Kind == KindMesh {
				errs = append(errs, field.Forbidden(lp, "a Mesh belongs to no mesh"))
			} else if v != "" {
				errs = append(errs, dnsLabel(lp, v)...)
			}
		}
	}
	for _, k := range sortedKeys(obj.GetAnnotations()) {
		for _, msg := range validation.IsQualifiedName(strings.ToLower(k)) {
			errs = append(errs, field.Invalid(p.Child("annotations").Key(k), k, msg))
		}
	}
	return errs
}

func dnsLabel(p *field.Path, v string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(v) {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

func dnsSubdomain(p *field.Path, v string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(v) {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

// port checks a required port number.
func port(p *field.Path, v int32) field.ErrorList {
	if v < 1 || v > 65535 {
		return field.ErrorList{field.Invalid(p, v, "must be between 1 and 65535, inclusive")}
	}
	return nil
}

// optPort checks a port number where 0 means unset.
func optPort(p *field.Path, v int32) field.ErrorList {
	if v == 0 {
		return nil
	}
	return port(p, v)
}

// positive checks an optional duration: set, it must be > 0.
func positive(p *field.Path, d *metav1.Duration) field.ErrorList {
	if d != nil && d.Duration <= 0 {
		return field.ErrorList{field.Invalid(p, d.Duration.String(), "must be > 0")}
	}
	return nil
}

// nonNegative checks an optional duration where 0 is meaningful.
func nonNegative(p *field.Path, d *metav1.Duration) field.ErrorList {
	if d != nil && d.Duration < 0 {
		return field.ErrorList{field.Invalid(p, d.Duration.String(), "must be >= 0")}
	}
	return nil
}

func percent(p *field.Path, v float64) field.ErrorList {
	if v < 0 || v > 100 || v != v {
		return field.ErrorList{field.Invalid(p, v, "must be between 0 and 100, inclusive")}
	}
	return nil
}

func percentU(p *field.Path, v *uint32) field.ErrorList {
	if v != nil && *v > 100 {
		return field.ErrorList{field.Invalid(p, int64(*v), "must be between 0 and 100, inclusive")}
	}
	return nil
}

func atLeastOne(p *field.Path, v *uint32) field.ErrorList {
	if v != nil && *v < 1 {
		return field.ErrorList{field.Invalid(p, int64(*v), "must be >= 1")}
	}
	return nil
}
