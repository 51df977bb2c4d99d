package ads

import (
	"errors"
	"fmt"
	"os"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"
)

// MeshLabel is the label naming a Dataplane's mesh (api/v1alpha1.MeshLabel,
// repeated here so the proxy does not link the API packages).
const MeshLabel = "trellis.dev/mesh"

// DataplaneMetadataKey is the node.metadata key holding the whole Dataplane
// document, so the control plane can register the proxy when it connects.
const DataplaneMetadataKey = "trellis.dev/dataplane"

// Default mesh and namespace of a Dataplane that names none.
const (
	DefaultMesh      = "default"
	DefaultNamespace = "default"
)

// NodeFromDataplane reads the Dataplane document (YAML or JSON) at path and
// returns the xDS node that identifies the proxy: id "<namespace>/<name>",
// cluster the mesh (label trellis.dev/mesh, default "default"), locality
// from spec.locality, and metadata["trellis.dev/dataplane"] holding the
// document as it is. Errors name the file and the field.
func NodeFromDataplane(path string) (*corev3.Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dataplane: %w", err)
	}
	n, err := ParseDataplane(data)
	if err != nil {
		return nil, fmt.Errorf("dataplane %s: %w", path, err)
	}
	return n, nil
}

// ParseDataplane is NodeFromDataplane on a document already read. The
// document is read generically: only kind, metadata.name,
// metadata.namespace, metadata.labels and spec.locality are interpreted.
func ParseDataplane(data []byte) (*corev3.Node, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a YAML or JSON document: %w", err)
	}
	if doc == nil {
		return nil, errors.New("empty document")
	}
	if k, ok := doc["kind"]; ok && k != "Dataplane" {
		return nil, fmt.Errorf("kind: want Dataplane, got %v", k)
	}
	meta, ok := doc["metadata"].(map[string]any)
	if !ok {
		return nil, errors.New("metadata: required (a mapping with name)")
	}
	name, _ := meta["name"].(string)
	if name == "" {
		return nil, errors.New("metadata.name: required")
	}
	ns := DefaultNamespace
	if v, present := meta["namespace"]; present {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("metadata.namespace: want a string, got %T", v)
		}
		if s != "" {
			ns = s
		}
	}
	mesh := DefaultMesh
	if v, present := meta["labels"]; present && v != nil {
		labels, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("metadata.labels: want a mapping, got %T", v)
		}
		for k, lv := range labels {
			if _, ok := lv.(string); !ok {
				return nil, fmt.Errorf("metadata.labels[%q]: want a string, got %T", k, lv)
			}
		}
		if m, _ := labels[MeshLabel].(string); m != "" {
			mesh = m
		}
	}
	var loc *corev3.Locality
	if spec, ok := doc["spec"].(map[string]any); ok {
		if l, ok := spec["locality"].(map[string]any); ok {
			region, _ := l["region"].(string)
			zone, _ := l["zone"].(string)
			if region != "" || zone != "" {
				loc = &corev3.Locality{Region: region, Zone: zone}
			}
		}
	}
	dp, err := structpb.NewStruct(doc)
	if err != nil {
		return nil, fmt.Errorf("cannot carry the document in node metadata: %w", err)
	}
	md := &structpb.Struct{Fields: map[string]*structpb.Value{DataplaneMetadataKey: structpb.NewStructValue(dp)}}
	return &corev3.Node{Id: ns + "/" + name, Cluster: mesh, Locality: loc, Metadata: md}, nil
}

// StaticNode returns a node without a Dataplane document (proxyless-like,
// for tests and benchmarks): id as given, cluster the mesh (default
// "default").
func StaticNode(id, mesh string) *corev3.Node {
	if mesh == "" {
		mesh = DefaultMesh
	}
	return &corev3.Node{Id: id, Cluster: mesh}
}

// DataplaneIdentity returns the mesh and service of the identity a proxy
// runs as: the node's mesh and, from the Dataplane document in its
// metadata, spec.identity, else the label "app", else metadata.name (the
// control plane's rule, api/v1alpha1). service is "" for a node without a
// Dataplane document (StaticNode): the proxy then takes the service its
// dataplane token grants.
func DataplaneIdentity(node *corev3.Node) (mesh, service string) {
	dp := node.GetMetadata().GetFields()[DataplaneMetadataKey].GetStructValue()
	if dp == nil {
		return node.GetCluster(), ""
	}
	meta := dp.GetFields()["metadata"].GetStructValue()
	service = meta.GetFields()["labels"].GetStructValue().GetFields()["app"].GetStringValue()
	if service == "" {
		service = meta.GetFields()["name"].GetStringValue()
	}
	if id := dp.GetFields()["spec"].GetStructValue().GetFields()["identity"].GetStringValue(); id != "" {
		service = id
	}
	return node.GetCluster(), service
}
