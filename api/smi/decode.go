package smi

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// versions lists the kinds Decode reads, by apiVersion.
var versions = map[string][]string{
	SplitGroup + "/v1alpha2":  {KindTrafficSplit},
	SplitGroup + "/v1alpha3":  {KindTrafficSplit},
	SplitGroup + "/v1alpha4":  {KindTrafficSplit},
	SpecsGroup + "/v1alpha4":  {KindHTTPRouteGroup, KindTCPRoute},
	AccessGroup + "/v1alpha3": {KindTrafficTarget},
}

// IsSMI reports whether apiVersion belongs to an SMI API group (any
// version: Decode says which versions it reads).
func IsSMI(apiVersion string) bool {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return false
	}
	switch gv.Group {
	case SplitGroup, SpecsGroup, AccessGroup:
		return true
	}
	return false
}

// Decode strictly decodes one SMI YAML or JSON document into a
// *TrafficSplit, *HTTPRouteGroup, *TCPRoute or *TrafficTarget. Unknown
// fields are errors naming their path, as in v1alpha1.Decode; so is
// spec.matches in a v1alpha2 TrafficSplit, which that version lacks.
// The result is also a v1alpha1.Object.
func Decode(data []byte) (any, error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return nil, fmt.Errorf("a document must be an object with apiVersion and kind: %w", err)
	}
	switch {
	case tm.APIVersion == "":
		return nil, errors.New("apiVersion: Required value")
	case tm.Kind == "":
		return nil, errors.New("kind: Required value")
	}
	kinds, ok := versions[tm.APIVersion]
	if !ok {
		return nil, fmt.Errorf("apiVersion: Unsupported value: %q: supported SMI versions: %s", tm.APIVersion, supportedVersions())
	}
	var obj v1alpha1.Object
	switch {
	case !slices.Contains(kinds, tm.Kind):
		return nil, fmt.Errorf("kind: Unsupported value: %q: supported values for %s: %q", tm.Kind, tm.APIVersion, kinds)
	case tm.Kind == KindTrafficSplit:
		obj = &TrafficSplit{}
	case tm.Kind == KindHTTPRouteGroup:
		obj = &HTTPRouteGroup{}
	case tm.Kind == KindTCPRoute:
		obj = &TCPRoute{}
	case tm.Kind == KindTrafficTarget:
		obj = &TrafficTarget{}
	}
	if err := v1alpha1.UnmarshalStrict(data, obj); err != nil {
		return nil, err
	}
	if ts, ok := obj.(*TrafficSplit); ok && tm.APIVersion == SplitGroup+"/v1alpha2" && ts.Spec.Matches != nil {
		return nil, errors.New("spec.matches: unknown field (TrafficSplit v1alpha2 has no matches; use v1alpha4)")
	}
	return obj, nil
}

func supportedVersions() string {
	var vs []string
	for _, v := range []string{SplitGroup + "/v1alpha2", SplitGroup + "/v1alpha3", SplitGroup + "/v1alpha4", SpecsGroup + "/v1alpha4", AccessGroup + "/v1alpha3"} {
		b, _ := json.Marshal(v)
		vs = append(vs, string(b))
	}
	return strings.Join(vs, ", ")
}
