package v1alpha1_test

import (
	"bytes"
	"testing"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

// FuzzDecode checks that Decode never panics and that whatever it accepts
// survives Default, Validate, Conditions and an Encode/Decode round trip
// unchanged, with Default idempotent.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{serviceYAML, dataplaneYAML, policyYAML, accessYAML,
		"apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec: {mtls: {mode: PERMISSIVE, certificateTTL: 1h}, ca: {type: provided, provided: {certFile: /a, keyFile: /b}}, accessPolicy: {default: DENY}}\n", httpRouteYAML, grpcRouteYAML, tcpRouteYAML, conditionsWorld,
		"apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec: {trustDomain: x, defaults: {timeouts: {request: 1s}}}\n",
		`{"apiVersion":"gateway.networking.k8s.io/v1alpha2","kind":"TCPRoute","metadata":{"name":"t"}}`,
		"- [", "{", "apiVersion: 1", ""} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := api.Decode(data)
		if err != nil {
			return
		}
		api.Default(obj)
		api.Validate(obj)
		api.Conditions(obj, objects(nil))
		api.Refs(obj)
		once, err := api.Encode(obj)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		back, err := api.Decode(once)
		if err != nil {
			t.Fatalf("Decode(Encode(obj)): %v\n%s", err, once)
		}
		api.Default(back)
		twice, err := api.Encode(back)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("round trip or Default changed the object:\n%s\n%s", once, twice)
		}
	})
}
