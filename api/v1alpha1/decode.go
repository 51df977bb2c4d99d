package v1alpha1

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	goyaml "go.yaml.in/yaml/v2"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// gatewayV1alpha2 is the older Gateway API version whose TCPRoute and
// GRPCRoute Decode accepts and converts to v1 (the two have the same schema).
const gatewayV1alpha2 = GatewayGroup + "/v1alpha2"

// Decode decodes one YAML or JSON document into the Trellis object its
// apiVersion and kind name. Decoding is strict: an unknown or duplicate
// field is an error naming its path ("spec.ports[0].prot: unknown field"),
// as is a missing or unknown apiVersion or kind. Gateway API v1alpha2
// TCPRoute and GRPCRoute documents come back as their v1 kinds.
//
// Decode neither defaults nor validates: see Default and Validate. SMI
// documents are not decoded here (see package api/smi).
func Decode(data []byte) (Object, error) {
	js, err := toJSON(data)
	if err != nil {
		return nil, err
	}
	if isNull(js) {
		return nil, errors.New("empty document")
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if js = bytes.TrimSpace(js); js[0] != '{' {
		return nil, errors.New("a document must be an object with apiVersion and kind")
	}
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, jsonError(js, err)
	}
	info, err := kindFor(tm.APIVersion, tm.Kind)
	if err != nil {
		return nil, err
	}
	obj := info.New()
	if err := unmarshalStrictJSON(js, obj); err != nil {
		return nil, err
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk(info.APIVersion, info.Kind))
	return obj, nil
}

// UnmarshalStrict decodes one YAML or JSON document into v (a pointer) as
// Decode does: unknown and duplicate fields are errors naming their path.
// It serves packages that decode other APIs' documents (api/smi).
func UnmarshalStrict(data []byte, v any) error {
	js, err := toJSON(data)
	if err != nil {
		return err
	}
	if isNull(js) {
		return errors.New("empty document")
	}
	return unmarshalStrictJSON(js, v)
}

func unmarshalStrictJSON(js []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(js, v)
	if err != nil {
		return jsonError(js, err)
	}
	if len(strict) > 0 {
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = strictMessage(e)
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// kindFor resolves a document's apiVersion and kind.
func kindFor(apiVersion, kind string) (KindInfo, error) {
	switch {
	case apiVersion == "":
		return KindInfo{}, errors.New("apiVersion: Required value")
	case kind == "":
		return KindInfo{}, errors.New("kind: Required value")
	}
	var supported []string
	switch apiVersion {
	case APIVersion:
		supported = []string{KindMesh, KindService, KindDataplane, KindTrafficPolicy, KindAccessPolicy, KindBroker, KindSubscription}
	case GatewayAPIVersion:
		supported = []string{KindHTTPRoute, KindGRPCRoute, KindTCPRoute}
	case gatewayV1alpha2:
		supported = []string{KindGRPCRoute, KindTCPRoute}
	default:
		return KindInfo{}, fmt.Errorf("apiVersion: Unsupported value: %q: supported values: %q, %q, %q",
			apiVersion, APIVersion, GatewayAPIVersion, gatewayV1alpha2)
	}
	for _, k := range supported {
		if k == kind {
			info, _ := kindInfo(k)
			return info, nil
		}
	}
	return KindInfo{}, fmt.Errorf("kind: Unsupported value: %q: supported values for %s: %s",
		kind, apiVersion, quoteAll(supported))
}

func gvk(apiVersion, kind string) schema.GroupVersionKind {
	gv, _ := schema.ParseGroupVersion(apiVersion)
	return gv.WithKind(kind)
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

// toJSON turns a YAML or JSON document into JSON, refusing duplicate keys.
func toJSON(data []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return trimmed, nil
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		msg := err.Error()
		var te *goyaml.TypeError
		if errors.As(err, &te) {
			msg = "yaml: " + strings.Join(te.Errors, "; ")
		}
		return nil, errors.New(msg)
	}
	return js, nil
}

func isNull(js []byte) bool {
	t := bytes.TrimSpace(js)
	return len(t) == 0 || string(t) == "null"
}

func strictMessage(err error) string {
	var fe sigsjson.FieldError
	if errors.As(err, &fe) {
		what := strings.TrimSuffix(err.Error(), " "+fmt.Sprintf("%q", fe.FieldPath()))
		if strings.HasSuffix(fe.FieldPath(), ".true") || strings.HasSuffix(fe.FieldPath(), ".false") {
			// YAML 1.1 reads unquoted on/off/yes/no keys as booleans.
			what += ` (YAML reads an unquoted key on, off, yes or no as a boolean: quote it, as in "on":)`
		}
		return fe.FieldPath() + ": " + what
	}
	return err.Error()
}

// jsonError names the field of a decoding error. Type errors carry their
// path; a value a field's own decoder refused (a duration "5x") is found by
// looking for the quoted value the message names.
func jsonError(js []byte, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Errorf("%s: cannot decode a %s into %s", te.Field, te.Value, te.Type)
	}
	if ok, off := sigsjson.SyntaxErrorOffset(err); ok {
		return fmt.Errorf("json syntax error at offset %d: %w", off, err)
	}
	var tree any
	if json.Unmarshal(js, &tree) == nil {
		if path := findQuoted(tree, "", err.Error()); path != "" {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return err
}

// findQuoted returns the path of the first string leaf of tree whose
// quoted value occurs in msg.
func findQuoted(tree any, path, msg string) string {
	switch v := tree.(type) {
	case string:
		if v != "" && strings.Contains(msg, strconv.Quote(v)) {
			return path
		}
	case []any:
		for i, e := range v {
			if p := findQuoted(e, fmt.Sprintf("%s[%d]", path, i), msg); p != "" {
				return p
			}
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if p := findQuoted(v[k], p, msg); p != "" {
				return p
			}
		}
	}
	return ""
}

// DecodeAll decodes a multi-document YAML stream (documents separated by
// "---" lines; JSON documents are YAML too). Empty documents, and those
// holding only comments, are skipped and not counted. The first error stops
// decoding and names the document by its number among the non-empty ones,
// with its kind and name when it has them:
// "document 2 (HTTPRoute default/reviews): spec.rules: unknown field".
func DecodeAll(r io.Reader) ([]Object, error) {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var objs []Object
	n := 0
	for {
		doc, err := yr.Read()
		if err == io.EOF {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n+1, err)
		}
		if js, err := yaml.YAMLToJSON(doc); err == nil && isNull(js) {
			continue
		}
		n++
		obj, err := Decode(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d%s: %w", n, describeDoc(doc), err)
		}
		objs = append(objs, obj)
	}
}

// describeDoc names a document by kind, namespace and name, as far as it
// can be read: " (HTTPRoute default/reviews)".
func describeDoc(doc []byte) string {
	var d struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &d); err != nil || d.Kind == "" {
		return ""
	}
	if d.Metadata.Name == "" {
		return " (" + d.Kind + ")"
	}
	name := d.Metadata.Name
	if info, ok := kindInfo(d.Kind); !ok || info.Namespaced {
		ns := d.Metadata.Namespace
		if ns == "" {
			ns = DefaultNamespace
		}
		name = ns + "/" + name
	}
	return " (" + d.Kind + " " + name + ")"
}

// Encode returns obj as JSON with apiVersion and kind set from its Go type
// (obj itself is not changed).
func Encode(obj Object) ([]byte, error) {
	kind := KindOf(obj)
	if kind == "" {
		return nil, fmt.Errorf("encode: %T is not a Trellis kind", obj)
	}
	info, _ := kindInfo(kind)
	want := gvk(info.APIVersion, kind)
	if obj.GetObjectKind().GroupVersionKind() != want {
		// A shallow copy, so concurrent readers of obj see no write.
		v := reflect.New(reflect.TypeOf(obj).Elem())
		v.Elem().Set(reflect.ValueOf(obj).Elem())
		obj = v.Interface().(Object)
		obj.GetObjectKind().SetGroupVersionKind(want)
	}
	return json.Marshal(obj)
}
