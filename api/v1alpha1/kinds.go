package v1alpha1

import (
	"slices"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The kinds Trellis stores.
const (
	KindMesh          = "Mesh"
	KindService       = "Service"
	KindDataplane     = "Dataplane"
	KindTrafficPolicy = "TrafficPolicy"
	KindAccessPolicy  = "AccessPolicy"
	KindHTTPRoute     = "HTTPRoute"
	KindGRPCRoute     = "GRPCRoute"
	KindTCPRoute      = "TCPRoute"
)

// GatewayGroup is the Gateway API's group; GatewayAPIVersion the version
// Trellis stores its routes in.
const (
	GatewayGroup      = gwv1.GroupName
	GatewayAPIVersion = GatewayGroup + "/v1"
)

// ConvertedFromAnnotation marks an object translated from another API (SMI):
// its value is "<apiVersion>/<kind>/<name>" of the source document.
const ConvertedFromAnnotation = "trellis.dev/converted-from"

// KindInfo describes one kind: the whole descriptor, nothing more.
type KindInfo struct {
	// Kind is the kind's name as in documents ("HTTPRoute").
	Kind string
	// APIVersion is the group/version stored objects carry.
	APIVersion string
	// Namespaced is false for cluster-scoped kinds (Mesh).
	Namespaced bool
	// Plural and Short are the lower-case names the CLI accepts besides
	// the kind ("httproutes"; Short may be empty).
	Plural, Short string
	// New returns a new empty object of the kind, TypeMeta set.
	New func() Object
}

// Kinds lists every kind Trellis stores, in the order a control plane
// should apply them (referenced kinds before referencing ones). The slice is
// new on each call.
func Kinds() []KindInfo { return slices.Clone(kinds) }

// kinds is the registry's one immutable table.
var kinds = []KindInfo{
	{Kind: KindMesh, APIVersion: APIVersion, Plural: "meshes", New: func() Object { return typed(&Mesh{}, APIVersion, KindMesh) }},
	{Kind: KindService, APIVersion: APIVersion, Namespaced: true, Plural: "services", Short: "svc", New: func() Object { return typed(&Service{}, APIVersion, KindService) }},
	{Kind: KindDataplane, APIVersion: APIVersion, Namespaced: true, Plural: "dataplanes", Short: "dp", New: func() Object { return typed(&Dataplane{}, APIVersion, KindDataplane) }},
	{Kind: KindHTTPRoute, APIVersion: GatewayAPIVersion, Namespaced: true, Plural: "httproutes", New: func() Object { return typed(&gwv1.HTTPRoute{}, GatewayAPIVersion, KindHTTPRoute) }},
	{Kind: KindGRPCRoute, APIVersion: GatewayAPIVersion, Namespaced: true, Plural: "grpcroutes", New: func() Object { return typed(&gwv1.GRPCRoute{}, GatewayAPIVersion, KindGRPCRoute) }},
	{Kind: KindTCPRoute, APIVersion: GatewayAPIVersion, Namespaced: true, Plural: "tcproutes", New: func() Object { return typed(&gwv1.TCPRoute{}, GatewayAPIVersion, KindTCPRoute) }},
	{Kind: KindTrafficPolicy, APIVersion: APIVersion, Namespaced: true, Plural: "trafficpolicies", Short: "tp", New: func() Object { return typed(&TrafficPolicy{}, APIVersion, KindTrafficPolicy) }},
	{Kind: KindAccessPolicy, APIVersion: APIVersion, Namespaced: true, Plural: "accesspolicies", Short: "ap", New: func() Object { return typed(&AccessPolicy{}, APIVersion, KindAccessPolicy) }},
	{Kind: KindBroker, APIVersion: APIVersion, Namespaced: true, Plural: "brokers", New: func() Object { return typed(&Broker{}, APIVersion, KindBroker) }},
	{Kind: KindSubscription, APIVersion: APIVersion, Namespaced: true, Plural: "subscriptions", Short: "sub", New: func() Object { return typed(&Subscription{}, APIVersion, KindSubscription) }},
}

func typed(o Object, apiVersion, kind string) Object {
	o.GetObjectKind().SetGroupVersionKind(gvk(apiVersion, kind))
	return o
}

// LookupKind finds a kind by its name, plural or short name, ignoring case
// ("svc", "Services", "service" all find Service).
func LookupKind(name string) (KindInfo, bool) {
	for _, k := range kinds {
		if strings.EqualFold(name, k.Kind) || strings.EqualFold(name, k.Plural) || (k.Short != "" && strings.EqualFold(name, k.Short)) {
			return k, true
		}
	}
	return KindInfo{}, false
}

// KindOf returns the kind of a Trellis object by its Go type, whatever its
// TypeMeta says, or "" for a type Trellis does not store.
func KindOf(obj Object) string {
	switch obj.(type) {
	case *Mesh:
		return KindMesh
	case *Service:
		return KindService
	case *Dataplane:
		return KindDataplane
	case *TrafficPolicy:
		return KindTrafficPolicy
	case *AccessPolicy:
		return KindAccessPolicy
	case *Broker:
		return KindBroker
	case *Subscription:
		return KindSubscription
	case *gwv1.HTTPRoute:
		return KindHTTPRoute
	case *gwv1.GRPCRoute:
		return KindGRPCRoute
	case *gwv1.TCPRoute:
		return KindTCPRoute
	}
	return ""
}

func kindInfo(kind string) (KindInfo, bool) {
	for _, k := range kinds {
		if k.Kind == kind {
			return k, true
		}
	}
	return KindInfo{}, false
}
