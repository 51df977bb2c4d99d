package bolt

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/trellis-mesh/trellis/internal/store"
)

func TestEventRoundTrip(t *testing.T) {
	for _, ev := range []store.Event{
		{Type: store.EventPut, Revision: 7, Resource: store.Resource{Key: store.Key{Kind: "Service", Namespace: "default", Name: "web"}, Revision: 7, Value: []byte(`{"a":1}`)}},
		{Type: store.EventDelete, Revision: 9, Resource: store.Resource{Key: store.Key{Kind: "Mesh", Name: "m"}, Revision: 3, Value: []byte{}}},
	} {
		got, err := decodeEvent(ev.Revision, encodeEvent(ev))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ev, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	full := encodeEvent(store.Event{Type: store.EventPut, Resource: store.Resource{Key: store.Key{Kind: "K", Name: "n"}}})
	for n := range len(full) - 1 { // every cut before the 8-byte revision ends
		if _, err := decodeEvent(1, full[:n]); err == nil {
			t.Errorf("decoding %d of %d bytes succeeded", n, len(full))
		}
	}
}

func TestParseDBKey(t *testing.T) {
	for _, k := range []store.Key{{Kind: "Service", Namespace: "default", Name: "web"}, {Kind: "Mesh", Name: "m"}} {
		got, err := parseDBKey(dbKey(k))
		if err != nil || got != k {
			t.Errorf("parseDBKey(dbKey(%v)) = %v, %v", k, got, err)
		}
	}
	for _, bad := range []string{"Service", "Service\x00web", "a\x00b\x00c\x00d"} {
		if _, err := parseDBKey([]byte(bad)); err == nil {
			t.Errorf("parseDBKey(%q) succeeded", bad)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(encodeEvent(store.Event{Type: store.EventPut, Resource: store.Resource{Key: store.Key{Kind: "K", Namespace: "ns", Name: "n"}, Value: []byte("{}")}}))
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeEvent(1, b)
		if err != nil {
			return
		}
		again, err := decodeEvent(1, encodeEvent(ev))
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if diff := cmp.Diff(ev, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("re-encoding changed the event:\n%s", diff)
		}
	})
}
