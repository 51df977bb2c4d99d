// Package manager is the write path of the control plane: it decodes,
// defaults and validates documents, refuses a whole apply when any document is
// bad, and writes the rest to the store idempotently. It also answers reads
// with each resource's status computed from the current resources (Gateway
// API-style conditions), so status never lags behind the spec it describes.
package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/trellis-mesh/trellis/api/smi"
	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/store"
)

// ErrNoDocuments is returned by Decode and Apply for a stream that holds
// no document (only blanks, comments and separators).
var ErrNoDocuments = errors.New("no documents to apply")

// Manager reads and writes mesh resources through a Store.
type Manager struct {
	store store.Store
	now   func() time.Time
}

// New returns a Manager over s.
func New(s store.Store) *Manager { return &Manager{store: s, now: time.Now} }

// Action says what Apply did with one document.
type Action string

// The actions of Apply.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
)

// Result is the outcome of applying one document.
type Result struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Action    Action `json:"action"`
}

// DocumentError lists what is wrong with one document of an apply.
type DocumentError struct {
	Document  int      `json:"document"` // 1-based
	Kind      string   `json:"kind,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name,omitempty"`
	Errors    []string `json:"errors"`
}

// InvalidError is returned when an apply is refused; nothing was written.
type InvalidError struct {
	Documents []DocumentError
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	b.WriteString("refused, nothing changed:")
	for _, d := range e.Documents {
		fmt.Fprintf(&b, "\ndocument %d", d.Document)
		if d.Kind != "" {
			fmt.Fprintf(&b, " (%s %s)", d.Kind, displayName(d.Namespace, d.Name))
		}
		for _, msg := range d.Errors {
			fmt.Fprintf(&b, "\n  %s", msg)
		}
	}
	return b.String()
}

func displayName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// Decode reads a stream of YAML or JSON documents (Trellis kinds, Gateway API
// routes, SMI documents), converts SMI documents to Trellis' own, defaults
// and validates every object. Every problem of every document is reported;
// on any problem the returned error is an *InvalidError.
func (m *Manager) Decode(ctx context.Context, r io.Reader) ([]v1alpha1.Object, error) {
	docs, err := splitDocuments(r)
	if err != nil {
		return nil, err
	}
	var invalid InvalidError
	fail := func(i int, obj v1alpha1.Object, msgs ...string) {
		d := DocumentError{Document: i + 1, Errors: msgs}
		if obj != nil {
			d.Kind, d.Namespace, d.Name = v1alpha1.KindOf(obj), obj.GetNamespace(), obj.GetName()
		}
		invalid.Documents = append(invalid.Documents, d)
	}
	// First the native documents; SMI documents are converted after, with
	// the batch's own Services and HTTPRouteGroups visible to them.
	decoded := make([][]v1alpha1.Object, len(docs))
	smiDocs := map[int]any{}
	batch := &overlay{}
	for i, doc := range docs {
		if smi.IsSMI(apiVersionOf(doc)) {
			d, err := smi.Decode(doc)
			if err != nil {
				fail(i, nil, err.Error())
				continue
			}
			smiDocs[i] = d
			if o, ok := d.(v1alpha1.Object); ok {
				batch.add(o)
			}
			continue
		}
		obj, err := v1alpha1.Decode(doc)
		if err != nil {
			fail(i, nil, err.Error())
			continue
		}
		v1alpha1.Default(obj)
		decoded[i] = []v1alpha1.Object{obj}
		batch.add(obj)
	}
	if len(smiDocs) > 0 {
		if batch.base, err = m.snapshot(ctx); err != nil {
			return nil, err
		}
		// HTTPRouteGroups and TCPRoutes are not stored: a split finds the
		// ones of its own batch through ConvertAll.
		var specs []any
		for _, d := range smiDocs {
			switch d.(type) {
			case *smi.HTTPRouteGroup, *smi.TCPRoute:
				specs = append(specs, d)
			}
		}
		for i, d := range smiDocs {
			objs, err := smi.ConvertAll(append(slices.Clip(specs), d), batch)
			if err != nil {
				fail(i, nil, err.Error())
				continue
			}
			for _, o := range objs {
				v1alpha1.Default(o)
			}
			decoded[i] = objs
		}
	}
	var objs []v1alpha1.Object
	for i, list := range decoded {
		for _, obj := range list {
			if errs := v1alpha1.Validate(obj); len(errs) > 0 {
				msgs := make([]string, 0, len(errs))
				for _, e := range errs {
					msgs = append(msgs, e.Error())
				}
				fail(i, obj, msgs...)
				continue
			}
			objs = append(objs, obj)
		}
	}
	if len(invalid.Documents) > 0 {
		sort.SliceStable(invalid.Documents, func(a, b int) bool { return invalid.Documents[a].Document < invalid.Documents[b].Document })
		return nil, &invalid
	}
	if len(objs) == 0 {
		return nil, ErrNoDocuments
	}
	return objs, nil
}

// overlay is the stored objects with an apply's own documents on top.
type overlay struct {
	base  *snapshot
	extra []v1alpha1.Object
}

func (o *overlay) add(obj v1alpha1.Object) { o.extra = append(o.extra, obj) }

func (o *overlay) Get(kind, namespace, name string) (v1alpha1.Object, bool) {
	if namespace == "" {
		namespace = v1alpha1.DefaultNamespace
	}
	for _, x := range o.extra {
		if v1alpha1.KindOf(x) == kind && x.GetName() == name && (x.GetNamespace() == namespace || x.GetNamespace() == "") {
			return x, true
		}
	}
	if o.base == nil {
		return nil, false
	}
	return o.base.Get(kind, namespace, name)
}

func (o *overlay) List(kind string) []v1alpha1.Object {
	var out []v1alpha1.Object
	for _, x := range o.extra {
		if v1alpha1.KindOf(x) == kind {
			out = append(out, x)
		}
	}
	if o.base != nil {
		out = append(out, o.base.List(kind)...)
	}
	return out
}

// Apply decodes and validates every document of r, then creates or updates
// each object. A document identical to what is stored is left alone, so
// applying the same file twice changes nothing.
func (m *Manager) Apply(ctx context.Context, r io.Reader) ([]Result, error) {
	objs, err := m.Decode(ctx, r)
	if err != nil {
		return nil, err
	}
	results := make([]Result, 0, len(objs))
	for _, obj := range objs {
		res, err := m.put(ctx, obj)
		if err != nil {
			return results, err
		}
		results = append(results, res)
	}
	return results, nil
}

// Put creates or updates one object that is already defaulted and valid.
func (m *Manager) Put(ctx context.Context, obj v1alpha1.Object) (Result, error) {
	return m.put(ctx, obj)
}

// put writes obj, retrying a lost optimistic-concurrency race a few times.
func (m *Manager) put(ctx context.Context, obj v1alpha1.Object) (Result, error) {
	key := KeyOf(obj)
	res := Result{Kind: key.Kind, Namespace: key.Namespace, Name: key.Name}
	for attempt := 0; ; attempt++ {
		cur, err := m.store.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			obj.SetCreationTimestamp(metav1.NewTime(m.now().UTC().Truncate(time.Second)))
			obj.SetUID(uuid.NewUUID())
			obj.SetGeneration(1)
			data, err := encodeStored(obj)
			if err != nil {
				return res, err
			}
			if _, err := m.store.Create(ctx, key, data); err != nil {
				if errors.Is(err, store.ErrExists) && attempt < 3 {
					continue
				}
				return res, err
			}
			res.Action = Created
			return res, nil
		}
		if err != nil {
			return res, err
		}
		old, err := v1alpha1.Decode(cur.Value)
		if err != nil {
			return res, fmt.Errorf("%s: stored document is unreadable: %w", key, err)
		}
		if sameContent(old, obj) {
			res.Action = Unchanged
			return res, nil
		}
		obj.SetCreationTimestamp(old.GetCreationTimestamp())
		obj.SetUID(old.GetUID())
		obj.SetGeneration(old.GetGeneration() + 1)
		keepStatus(old, obj)
		data, err := encodeStored(obj)
		if err != nil {
			return res, err
		}
		if _, err := m.store.Update(ctx, key, data, cur.Revision); err != nil {
			if errors.Is(err, store.ErrConflict) && attempt < 3 {
				continue
			}
			return res, err
		}
		res.Action = Configured
		return res, nil
	}
}

// KeyOf returns obj's store key.
func KeyOf(obj v1alpha1.Object) store.Key {
	k := store.Key{Kind: v1alpha1.KindOf(obj), Name: obj.GetName()}
	if info, ok := v1alpha1.LookupKind(k.Kind); !ok || info.Namespaced {
		k.Namespace = v1alpha1.NamespaceOf(obj)
	}
	return k
}

// encodeStored encodes obj without the fields the store owns.
func encodeStored(obj v1alpha1.Object) ([]byte, error) {
	obj.SetResourceVersion("")
	return v1alpha1.Encode(obj)
}

// sameContent reports whether two versions of an object differ only in what
// the control plane owns (status, revision, uid, timestamps, generation).
func sameContent(a, b v1alpha1.Object) bool {
	ca, err1 := comparable(a)
	cb, err2 := comparable(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

func comparable(o v1alpha1.Object) ([]byte, error) {
	data, err := v1alpha1.Encode(o)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"} {
			delete(md, f)
		}
	}
	return json.Marshal(m) // map keys are sorted
}

// keepStatus carries the stored status of a Dataplane over an apply: a
// Dataplane's status is written by the control plane (connection, xDS
// answers), never by the user.
func keepStatus(old, obj v1alpha1.Object) {
	o, ok1 := old.(*v1alpha1.Dataplane)
	n, ok2 := obj.(*v1alpha1.Dataplane)
	if ok1 && ok2 {
		n.Status = o.Status
	}
}

func apiVersionOf(doc []byte) string {
	var tm struct {
		APIVersion string `json:"apiVersion"`
	}
	_ = yamlUnmarshal(doc, &tm)
	return tm.APIVersion
}
