package store

import (
	"errors"
	"testing"
)

func TestErrors(t *testing.T) {
	k := Key{Kind: "Service", Namespace: "default", Name: "web"}
	for _, tc := range []struct {
		name   string
		err    error
		target error
		msg    string
	}{
		{"conflict", ConflictError(k, 12, 14), ErrConflict, "Service/default/web: revision 12 does not match 14"},
		{"not found", NotFoundError(k), ErrNotFound, "Service/default/web: not found"},
		{"exists", ExistsError(Key{Kind: "Mesh", Name: "m"}), ErrExists, "Mesh//m: already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.target) {
				t.Errorf("errors.Is(%v, %v) = false", tc.err, tc.target)
			}
			if tc.err.Error() != tc.msg {
				t.Errorf("message %q, want %q", tc.err, tc.msg)
			}
		})
	}
}

func TestKeyValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  Key
		want string // "" = valid
	}{
		{"namespaced", Key{Kind: "Service", Namespace: "default", Name: "web"}, ""},
		{"cluster-scoped", Key{Kind: "Mesh", Name: "m"}, ""},
		{"no kind", Key{Name: "m"}, "//m: kind: must not be empty: invalid key"},
		{"no name", Key{Kind: "Mesh"}, "Mesh//: name: must not be empty: invalid key"},
		{"slash in namespace", Key{Kind: "Service", Namespace: "a/b", Name: "x"}, "Service/a/b/x: namespace: must not contain '/' or NUL: invalid key"},
		{"NUL in name", Key{Kind: "Service", Name: "x\x00"}, "Service//x\x00: name: must not contain '/' or NUL: invalid key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.key.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want || !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("Validate = %v, want %q wrapping ErrInvalidKey", err, tc.want)
			}
		})
	}
}

func TestKeyCompare(t *testing.T) {
	// Part-wise order, not the order of the joined strings: "a-b" < "a/" bytewise
	// but kind "a" < kind "a-b".
	ordered := []Key{
		{Kind: "a", Namespace: "z", Name: "z"},
		{Kind: "a-b", Namespace: "", Name: "a"},
		{Kind: "b", Namespace: "", Name: "z"},
		{Kind: "b", Namespace: "x", Name: "a"},
		{Kind: "b", Namespace: "x", Name: "b"},
	}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := ordered[i].Compare(ordered[j]); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}
