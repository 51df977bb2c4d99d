// Package smi reads Service Mesh Interface (SMI) documents and translates
// them to Trellis' own resources, so users of SMI-based meshes can bring
// their configuration: a TrafficSplit becomes a Gateway API HTTPRoute (or
// TCPRoute) attached to the split's root Service, a TrafficTarget an ALLOW
// AccessPolicy.
//
// The types are minimal, faithful copies of the SMI SDK's (the SDK module is
// not a dependency): TrafficSplit split.smi-spec.io v1alpha2 to v1alpha4,
// HTTPRouteGroup and TCPRoute specs.smi-spec.io/v1alpha4, TrafficTarget
// access.smi-spec.io/v1alpha3. Each is a v1alpha1.Object.
//
// Functions are pure; nothing here holds state.
package smi

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SMI API groups and the kinds of each.
const (
	SplitGroup  = "split.smi-spec.io"
	SpecsGroup  = "specs.smi-spec.io"
	AccessGroup = "access.smi-spec.io"

	KindTrafficSplit   = "TrafficSplit"
	KindHTTPRouteGroup = "HTTPRouteGroup"
	KindTCPRoute       = "TCPRoute"
	KindTrafficTarget  = "TrafficTarget"
)

// TrafficSplit shifts a share of the traffic addressed to a root Service to
// other Services (split.smi-spec.io v1alpha2, v1alpha3, v1alpha4; Matches
// exists from v1alpha3 on).
type TrafficSplit struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TrafficSplitSpec `json:"spec,omitempty"`
}

// TrafficSplitSpec is a TrafficSplit's desired state.
type TrafficSplitSpec struct {
	// Service is the root (apex) Service clients address.
	Service string `json:"service"`
	// Backends share the root Service's traffic by weight.
	Backends []TrafficSplitBackend `json:"backends"`
	// Matches restricts the split to the requests an HTTPRouteGroup (or
	// TCPRoute) describes; the rest goes to the root Service.
	Matches []TypedLocalObjectReference `json:"matches,omitempty"`
}

// TrafficSplitBackend is one destination of a split.
type TrafficSplitBackend struct {
	Service string `json:"service"`
	Weight  int    `json:"weight"`
}

// TypedLocalObjectReference names an object in the split's namespace
// (Kubernetes core/v1 TypedLocalObjectReference).
type TypedLocalObjectReference struct {
	APIGroup *string `json:"apiGroup,omitempty"`
	Kind     string  `json:"kind"`
	Name     string  `json:"name"`
}

// HTTPRouteGroup describes HTTP traffic by named matches
// (specs.smi-spec.io/v1alpha4).
type HTTPRouteGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HTTPRouteGroupSpec `json:"spec"`
}

// HTTPRouteGroupSpec lists the matches.
type HTTPRouteGroupSpec struct {
	Matches []HTTPMatch `json:"matches,omitempty"`
}

// HTTPMatch is one named HTTP match: every set field must match.
type HTTPMatch struct {
	Name string `json:"name,omitempty"`
	// Methods are HTTP methods; "*" or none means any.
	Methods []string `json:"methods,omitempty"`
	// PathRegex is a regular expression the request path must match.
	PathRegex string `json:"pathRegex,omitempty"`
	// Headers maps header names to regular expressions of their values.
	Headers HTTPHeaders `json:"headers,omitempty"`
}

// HTTPHeaders maps header names to value regular expressions. It decodes
// from an object, as the SMI SDK defines it, or from a list of one-entry
// objects, as several SMI meshes document it.
type HTTPHeaders map[string]string

// UnmarshalJSON accepts {"a": "x"} and [{"a": "x"}].
func (h *HTTPHeaders) UnmarshalJSON(data []byte) error {
	var m map[string]string
	if err := json.Unmarshal(data, &m); err == nil {
		*h = m
		return nil
	}
	var list []map[string]string
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("headers: want an object of header names to regular expressions, or a list of them")
	}
	*h = HTTPHeaders{}
	for _, e := range list {
		for k, v := range e {
			(*h)[k] = v
		}
	}
	return nil
}

// TCPRoute describes TCP traffic by port (specs.smi-spec.io/v1alpha4).
type TCPRoute struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TCPRouteSpec `json:"spec,omitempty"`
}

// TCPRouteSpec holds the TCPRoute's one match.
type TCPRouteSpec struct {
	Matches TCPMatch `json:"matches,omitempty"`
}

// TCPMatch matches connections to the listed ports (any port when empty).
type TCPMatch struct {
	Name  string `json:"name,omitempty"`
	Ports []int  `json:"ports,omitempty"`
}

// TrafficTarget allows sources to reach a destination on some routes
// (access.smi-spec.io/v1alpha3). It converts to an ALLOW AccessPolicy.
type TrafficTarget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TrafficTargetSpec `json:"spec"`
}

// TrafficTargetSpec is a TrafficTarget's desired state.
type TrafficTargetSpec struct {
	Destination IdentityBindingSubject   `json:"destination"`
	Sources     []IdentityBindingSubject `json:"sources,omitempty"`
	Rules       []TrafficTargetRule      `json:"rules,omitempty"`
}

// TrafficTargetRule names an HTTPRouteGroup or TCPRoute and some of its
// matches.
type TrafficTargetRule struct {
	Kind    string   `json:"kind"`
	Name    string   `json:"name"`
	Matches []string `json:"matches,omitempty"`
}

// IdentityBindingSubject is a workload identity (a ServiceAccount).
type IdentityBindingSubject struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}
