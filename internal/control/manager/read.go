package manager

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"

	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/store"
)

// maxDocument bounds one document of an apply.
const maxDocument = 4 << 20

// splitDocuments splits a YAML stream at "---" lines (a JSON document is
// YAML too) and drops documents that hold only blanks and comments.
func splitDocuments(r io.Reader) ([][]byte, error) {
	yr := k8syaml.NewYAMLReader(bufio.NewReaderSize(r, 64<<10))
	var docs [][]byte
	for {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		if len(doc) > maxDocument {
			return nil, fmt.Errorf("document %d: larger than %d bytes", len(docs)+1, maxDocument)
		}
		if !blank(doc) {
			docs = append(docs, doc)
		}
	}
}

func blank(doc []byte) bool {
	for line := range bytes.SplitSeq(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && string(line) != "---" {
			return false
		}
	}
	return true
}

func yamlUnmarshal(data []byte, v any) error { return yaml.Unmarshal(data, v) }

// Get returns one object with its status.
func (m *Manager) Get(ctx context.Context, k store.Key) (v1alpha1.Object, error) {
	res, err := m.store.Get(ctx, k)
	if err != nil {
		return nil, err
	}
	obj, err := decodeStored(res)
	if err != nil {
		return nil, err
	}
	snap, err := m.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	setStatus(obj, snap)
	return obj, nil
}

// List returns the objects of kind (every kind when empty), in namespace
// when it is not empty (cluster-scoped kinds ignore it), sorted by namespace and name, with their status.
func (m *Manager) List(ctx context.Context, kind, namespace string) ([]v1alpha1.Object, error) {
	snap, err := m.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var out []v1alpha1.Object
	for _, obj := range snap.objs {
		if kind != "" && v1alpha1.KindOf(obj) != kind {
			continue
		}
		if namespace != "" && KeyOf(obj).Namespace != "" && obj.GetNamespace() != namespace {
			continue // cluster-scoped kinds (Mesh) ignore the namespace
		}
		setStatus(obj, snap)
		out = append(out, obj)
	}
	return out, nil
}

// Delete removes one object and returns it as it was.
func (m *Manager) Delete(ctx context.Context, k store.Key) (v1alpha1.Object, error) {
	res, err := m.store.Delete(ctx, k, 0)
	if err != nil {
		return nil, err
	}
	return decodeStored(res)
}

// Snapshot returns every stored object, decoded, as a v1alpha1.Lookup.
func (m *Manager) Snapshot(ctx context.Context) (v1alpha1.Lookup, []v1alpha1.Object, error) {
	s, err := m.snapshot(ctx)
	if err != nil {
		return nil, nil, err
	}
	return s, s.objs, nil
}

func decodeStored(res store.Resource) (v1alpha1.Object, error) {
	obj, err := v1alpha1.Decode(res.Value)
	if err != nil {
		return nil, fmt.Errorf("%s: stored document is unreadable: %w", res.Key, err)
	}
	obj.SetResourceVersion(strconv.FormatInt(res.Revision, 10))
	return obj, nil
}

// snapshot is every stored object at one revision.
type snapshot struct {
	objs  []v1alpha1.Object
	byKey map[store.Key]v1alpha1.Object
	rev   int64
}

func (m *Manager) snapshot(ctx context.Context) (*snapshot, error) {
	list, rev, err := m.store.List(ctx, "")
	if err != nil {
		return nil, err
	}
	return newSnapshot(list, rev)
}

func newSnapshot(list []store.Resource, rev int64) (*snapshot, error) {
	s := &snapshot{byKey: make(map[store.Key]v1alpha1.Object, len(list)), rev: rev}
	for _, res := range list {
		if _, ok := v1alpha1.LookupKind(res.Key.Kind); !ok {
			continue // the control plane's own records (CA, tokens), never served
		}
		obj, err := decodeStored(res)
		if err != nil {
			return nil, err
		}
		s.objs = append(s.objs, obj)
		s.byKey[res.Key] = obj
	}
	sort.Slice(s.objs, func(i, j int) bool {
		a, b := KeyOf(s.objs[i]), KeyOf(s.objs[j])
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return s, nil
}

// Get implements v1alpha1.Lookup.
func (s *snapshot) Get(kind, namespace, name string) (v1alpha1.Object, bool) {
	k := store.Key{Kind: kind, Name: name}
	if info, ok := v1alpha1.LookupKind(kind); !ok || info.Namespaced {
		k.Namespace = namespace
		if k.Namespace == "" {
			k.Namespace = v1alpha1.DefaultNamespace
		}
	}
	o, ok := s.byKey[k]
	return o, ok
}

// List implements v1alpha1.Lookup.
func (s *snapshot) List(kind string) []v1alpha1.Object {
	var out []v1alpha1.Object
	for _, o := range s.objs {
		if v1alpha1.KindOf(o) == kind {
			out = append(out, o)
		}
	}
	return out
}
