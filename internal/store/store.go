package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Backends wrap them with the key they concern
// (`Service/default/web: revision 12 does not match 14`); test with errors.Is.
var (
	// ErrNotFound: the key does not exist (Get, Update with a revision, Delete).
	ErrNotFound = errors.New("not found")
	// ErrExists: Create found the key already present.
	ErrExists = errors.New("already exists")
	// ErrConflict: the expected revision of Update or Delete does not match
	// the resource's current Revision.
	ErrConflict = errors.New("revision conflict")
	// ErrCompacted: Watch was asked for history the store no longer keeps;
	// List and Watch from the List revision instead.
	ErrCompacted = errors.New("history compacted")
	// ErrInvalidKey: a Key is not storable (see Key.Validate).
	ErrInvalidKey = errors.New("invalid key")
)

// Key names one resource. Namespace is "" for cluster-scoped kinds.
type Key struct {
	Kind      string
	Namespace string
	Name      string
}

// String returns "Kind/Namespace/Name" ("Mesh//default" when cluster-scoped).
func (k Key) String() string {
	return k.Kind + "/" + k.Namespace + "/" + k.Name
}

// Compare orders keys by Kind, then Namespace, then Name (bytewise), the
// order List returns. It returns -1, 0 or +1 like cmp.Compare.
func (k Key) Compare(o Key) int {
	if c := cmp.Compare(k.Kind, o.Kind); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Namespace, o.Namespace); c != 0 {
		return c
	}
	return cmp.Compare(k.Name, o.Name)
}

// Validate reports whether k can be stored: Kind and Name must be non-empty,
// and no part may contain "/" or a NUL byte (backends use them as
// separators). The error wraps ErrInvalidKey and names the part.
func (k Key) Validate() error {
	if k.Kind == "" {
		return fmt.Errorf("%v: kind: must not be empty: %w", k, ErrInvalidKey)
	}
	if k.Name == "" {
		return fmt.Errorf("%v: name: must not be empty: %w", k, ErrInvalidKey)
	}
	for _, p := range [...]struct{ field, v string }{{"kind", k.Kind}, {"namespace", k.Namespace}, {"name", k.Name}} {
		if strings.ContainsAny(p.v, "/\x00") {
			return fmt.Errorf("%v: %s: must not contain '/' or NUL: %w", k, p.field, ErrInvalidKey)
		}
	}
	return nil
}

// ValidateKind reports whether kind is usable as a List filter: "" (every
// kind) or a string without "/" or NUL.
func ValidateKind(kind string) error {
	if strings.ContainsAny(kind, "/\x00") {
		return fmt.Errorf("kind %q: must not contain '/' or NUL: %w", kind, ErrInvalidKey)
	}
	return nil
}

// Resource is one stored document.
type Resource struct {
	Key
	// Revision is the store revision of the write that last changed this
	// resource (its mod revision).
	Revision int64
	// Value is the JSON document as written.
	Value []byte
}

// EventType says what happened to a resource.
type EventType int

const (
	// EventPut: the resource was created or updated; Event.Resource is the new state.
	EventPut EventType = iota + 1
	// EventDelete: the resource was deleted; Event.Resource is its last state.
	EventDelete
)

// String returns "PUT" or "DELETE".
func (t EventType) String() string {
	switch t {
	case EventPut:
		return "PUT"
	case EventDelete:
		return "DELETE"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change, as delivered by Watch.
type Event struct {
	Type EventType
	// Resource is the resource after a put. After a delete it is the
	// resource as it was before (last Value, and Revision the mod revision
	// of its last put).
	Resource Resource
	// Revision is the store revision of this change. For a put it equals
	// Resource.Revision.
	Revision int64
}

// Store is a revisioned key-value store of resources. See the package
// documentation for revisions and watch semantics.
type Store interface {
	// Get returns the resource at k, or an error wrapping ErrNotFound.
	Get(ctx context.Context, k Key) (Resource, error)
	// List returns every resource of kind ("" for every kind) sorted by
	// Key.Compare, and the store revision the list reflects: Watch from it to
	// follow changes after the list.
	List(ctx context.Context, kind string) ([]Resource, int64, error)
	// Create stores a new resource; it fails with ErrExists if k exists.
	Create(ctx context.Context, k Key, value []byte) (Resource, error)
	// Update replaces the resource at k if its Revision equals rev (else
	// ErrConflict, or ErrNotFound if k does not exist). rev 0 writes
	// unconditionally and creates k if missing.
	Update(ctx context.Context, k Key, value []byte, rev int64) (Resource, error)
	// Delete removes k if its Revision equals rev (0: unconditionally) and
	// returns the resource as it was. ErrNotFound if k does not exist.
	Delete(ctx context.Context, k Key, rev int64) (Resource, error)
	// Watch delivers every event with Revision > fromRev in order, then live
	// ones. ErrCompacted if that history is gone. The channel is closed when
	// ctx ends, the store closes or the watch is dropped (package doc).
	Watch(ctx context.Context, fromRev int64) (<-chan Event, error)
	// Revision returns the current store revision.
	Revision(ctx context.Context) (int64, error)
	// Close releases the store and closes every watch channel. Other
	// methods must not be called after Close.
	Close() error
}

// keyError is an error about one key that unwraps to a sentinel.
type keyError struct {
	k   Key
	msg string
	err error
}

func (e *keyError) Error() string { return e.k.String() + ": " + e.msg }
func (e *keyError) Unwrap() error { return e.err }

// NotFoundError returns an error wrapping ErrNotFound that names k, for backends.
func NotFoundError(k Key) error { return &keyError{k, "not found", ErrNotFound} }

// ExistsError returns an error wrapping ErrExists that names k, for backends.
func ExistsError(k Key) error { return &keyError{k, "already exists", ErrExists} }

// ConflictError returns an error wrapping ErrConflict that names k, the
// expected revision and the current one, for backends:
// "Service/default/web: revision 12 does not match 14".
func ConflictError(k Key, want, have int64) error {
	return &keyError{k, fmt.Sprintf("revision %d does not match %d", want, have), ErrConflict}
}
