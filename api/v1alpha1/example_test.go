package v1alpha1_test

import (
	"fmt"
	"strings"

	api "github.com/trellis-mesh/trellis/api/v1alpha1"
)

// A document is decoded, defaulted and validated; every violation comes
// back at once with its field path.
func ExampleValidate() {
	obj, err := api.Decode([]byte(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
spec:
  parentRefs:
  - name: reviews
  rules:
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: 90}
    - {name: reviews-v2, port: 9080, weight: -1}
`))
	if err != nil {
		panic(err)
	}
	api.Default(obj)
	for _, e := range api.Validate(obj) {
		fmt.Println(e)
	}
	// Output:
	// spec.parentRefs[0].kind: Unsupported value: "Gateway": supported values: "Service"
	// spec.rules[0].backendRefs[1].weight: Invalid value: -1: must be >= 0
}

// DecodeAll names the failing document by its position, kind and name.
func ExampleDecodeAll() {
	_, err := api.DecodeAll(strings.NewReader(`
apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: demo}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports:
  - port: 9080
    prot: http
`))
	fmt.Println(err)
	// Output:
	// document 2 (Service default/reviews): spec.ports[0].prot: unknown field
}

// Conditions reports what a stored object resolves, the Gateway API way.
func ExampleConditions() {
	objs, _ := api.DecodeAll(strings.NewReader(`
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{port: 9080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - backendRefs: [{name: reviews-v2, port: 9080}]
`))
	for _, o := range objs {
		api.Default(o)
	}
	for _, c := range api.Conditions(objs[1], objects(objs)) {
		fmt.Println(strings.TrimSpace(fmt.Sprint(c.Type, " ", c.Status, " ", c.Reason, " ", c.Message)))
	}
	// Output:
	// Accepted True Accepted
	// ResolvedRefs False BackendNotFound spec.rules[0].backendRefs[0]: Service default/reviews-v2 not found
}

// A path template becomes the RE2 expression a proxy's RBAC path matcher
// takes: {name} is one segment, a final {**} the rest of the path.
func ExamplePathTemplateRegex() {
	re, _ := api.PathTemplateRegex("/users/{id}/orders/{**}")
	fmt.Println(re)
	_, err := api.PathTemplateRegex("/files/{name}.txt")
	fmt.Println(err)
	// Output:
	// ^/users/[^/]+/orders(?:/.*)?$
	// segment "{name}.txt": a variable is a whole segment, {name} (letters, digits, '_') or {**}
}

// IdentityService names the service a Dataplane runs as: spec.identity,
// else its label app, else its name.
func ExampleIdentityService() {
	dp := &api.Dataplane{}
	dp.Name = "web-1.host-a"
	fmt.Println(api.IdentityService(dp))
	dp.Labels = map[string]string{"app": "web"}
	fmt.Println(api.IdentityService(dp))
	dp.Spec.Identity = "frontend"
	fmt.Println(api.IdentityService(dp))
	// Output:
	// web-1.host-a
	// web
	// frontend
}
