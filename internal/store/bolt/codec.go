package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/trellis-mesh/trellis/internal/store"
)

// dbKey is the "resources" bucket key of k: kind NUL namespace NUL name.
func dbKey(k store.Key) []byte {
	b := make([]byte, 0, len(k.Kind)+len(k.Namespace)+len(k.Name)+2)
	b = append(b, k.Kind...)
	b = append(b, 0)
	b = append(b, k.Namespace...)
	b = append(b, 0)
	return append(b, k.Name...)
}

// kindPrefix is the "resources" key prefix of every resource of kind.
func kindPrefix(kind string) []byte {
	if kind == "" {
		return nil
	}
	return append([]byte(kind), 0)
}

// parseDBKey splits a "resources" key. The three parts share one string.
func parseDBKey(b []byte) (store.Key, error) {
	str := string(b)
	kind, rest, ok1 := strings.Cut(str, "\x00")
	ns, name, ok2 := strings.Cut(rest, "\x00")
	if !ok1 || !ok2 || strings.IndexByte(name, 0) >= 0 {
		return store.Key{}, fmt.Errorf("resource key %q: want kind, namespace and name separated by NUL", b)
	}
	return store.Key{Kind: kind, Namespace: ns, Name: name}, nil
}

func revKey(rev int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(rev))
}

// encodeValue is a "resources" value: mod revision then the document.
func encodeValue(rev int64, value []byte) []byte {
	b := make([]byte, 8, 8+len(value))
	binary.BigEndian.PutUint64(b, uint64(rev))
	return append(b, value...)
}

// decodeValue returns the mod revision and a copy of the document.
func decodeValue(k store.Key, b []byte) (store.Resource, error) {
	if len(b) < 8 {
		return store.Resource{}, fmt.Errorf("%v: stored value of %d bytes is shorter than its revision", k, len(b))
	}
	return store.Resource{Key: k, Revision: int64(binary.BigEndian.Uint64(b)), Value: append([]byte(nil), b[8:]...)}, nil
}

// encodeEvent is an "events" value: type, kind, namespace, name (each
// uvarint-length-prefixed), the resource's revision (8 bytes), its document.
func encodeEvent(ev store.Event) []byte {
	r := ev.Resource
	b := make([]byte, 0, 1+3*binary.MaxVarintLen16+len(r.Kind)+len(r.Namespace)+len(r.Name)+8+len(r.Value))
	b = append(b, byte(ev.Type))
	for _, s := range [...]string{r.Kind, r.Namespace, r.Name} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(r.Revision))
	return append(b, r.Value...)
}

var errShortEvent = errors.New("truncated")

func decodeEvent(rev int64, b []byte) (store.Event, error) {
	ev := store.Event{Revision: rev}
	if len(b) < 1 {
		return ev, fmt.Errorf("event %d: %w", rev, errShortEvent)
	}
	ev.Type = store.EventType(b[0])
	if ev.Type != store.EventPut && ev.Type != store.EventDelete {
		return ev, fmt.Errorf("event %d: unknown type %d", rev, b[0])
	}
	b = b[1:]
	var parts [3]string
	for i := range parts {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return ev, fmt.Errorf("event %d: %w", rev, errShortEvent)
		}
		parts[i] = string(b[w : w+int(n)])
		b = b[w+int(n):]
	}
	if len(b) < 8 {
		return ev, fmt.Errorf("event %d: %w", rev, errShortEvent)
	}
	ev.Resource = store.Resource{
		Key:      store.Key{Kind: parts[0], Namespace: parts[1], Name: parts[2]},
		Revision: int64(binary.BigEndian.Uint64(b)),
		Value:    append([]byte(nil), b[8:]...),
	}
	return ev, nil
}
