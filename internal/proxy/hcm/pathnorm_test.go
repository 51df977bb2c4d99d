package hcm

import (
	"strings"
	"testing"
)

var (
	secure = PathOptions{Normalize: true, MergeSlashes: true, EscapedSlashes: UnescapeAndForward}
	normal = PathOptions{Normalize: true}
)

func TestPathApply(t *testing.T) {
	tests := []struct {
		name     string
		o        PathOptions
		in, want string
		redirect bool
		err      error
	}{
		{"off keeps dots", PathOptions{}, "/a/../b", "/a/../b", false, nil},
		{"off keeps lower-case escapes", PathOptions{}, "/a%2fb", "/a%2fb", false, nil},
		{"off rejects NUL", PathOptions{}, "/a%00", "", false, errEncodedNUL},
		{"off rejects bad escape", PathOptions{}, "/a%zz", "", false, errBadEscape},
		{"off rejects truncated escape", PathOptions{}, "/a%2", "", false, errBadEscape},
		{"off rejects control", PathOptions{}, "/a\x01", "", false, errControl},
		{"off rejects fragment", PathOptions{}, "/a#b", "", false, errFragment},
		{"asterisk", normal, "*", "*", false, nil},
		{"dot dot", normal, "/admin/../public", "/public", false, nil},
		{"dot", normal, "/a/./b", "/a/b", false, nil},
		{"trailing dot", normal, "/a/.", "/a/", false, nil},
		{"trailing dot dot", normal, "/a/b/..", "/a/", false, nil},
		{"above root", normal, "/../../admin", "/admin", false, nil},
		{"encoded dots", normal, "/public/%2e%2e/admin", "/admin", false, nil},
		{"mixed encoded dots", normal, "/public/.%2E/admin", "/admin", false, nil},
		{"unreserved decoded", normal, "/%61dmin%7e", "/admin~", false, nil},
		{"reserved kept upper", normal, "/a%3bb%3F", "/a%3Bb%3F", false, nil},
		{"percent kept", normal, "/a%25b", "/a%25b", false, nil},
		{"double encoding not decoded twice", normal, "/%252e%252e/admin", "/%252e%252e/admin", false, nil},
		{"backslash", normal, "/public\\..\\admin", "/admin", false, nil},
		{"raw space escaped", normal, "/a b", "/a%20b", false, nil},
		{"non-ascii escaped", normal, "/caf\xc3\xa9", "/caf%C3%A9", false, nil},
		{"empty segments kept without merge", normal, "/a//b", "/a//b", false, nil},
		{"dot dot over empty segment", normal, "/a//../b", "/a/b", false, nil},
		{"merge", PathOptions{MergeSlashes: true}, "//admin///x", "/admin/x", false, nil},
		{"keep encoded slash, upper-cased", normal, "/a%2fb", "/a%2Fb", false, nil},
		{"keep encoded backslash", normal, "/a%5cb", "/a%5Cb", false, nil},
		{"reject encoded slash", PathOptions{EscapedSlashes: RejectRequest}, "/a%2Fb", "", false, errEscapedSlash},
		{"reject encoded backslash", PathOptions{EscapedSlashes: RejectRequest}, "/a%5cb", "", false, errEscapedSlash},
		{"forward unescapes then normalizes", secure, "/public%2F..%2Fadmin", "/admin", false, nil},
		{"forward encoded backslash", secure, "/public%5C..%5Cadmin", "/admin", false, nil},
		{"forward then merge", secure, "/%2Fadmin", "/admin", false, nil},
		{"redirect", PathOptions{Normalize: true, MergeSlashes: true, EscapedSlashes: UnescapeAndRedirect}, "/a%2F%2Fb", "/a/b", true, nil},
		{"no redirect without escaped slash", PathOptions{Normalize: true, EscapedSlashes: UnescapeAndRedirect}, "/a/../b", "/b", false, nil},
		{"path parameters are opaque", secure, "/admin;x=1/../b", "/b", false, nil},
		{"dot dot with parameters is refused", secure, "/public/..;/admin", "", false, errDotParams},
		{"dot with parameters is refused", secure, "/a/.;x=1/b", "", false, errDotParams},
		{"dots inside a segment are kept", secure, "/a..;b/..c", "/a..;b/..c", false, nil},
		{"dot parameters pass without normalize", PathOptions{}, "/public/..;/admin", "/public/..;/admin", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, redirect, err := tc.o.Apply(tc.in)
			if err != tc.err || got != tc.want || redirect != tc.redirect {
				t.Fatalf("Apply(%q) = %q, %v, %v; want %q, %v, %v", tc.in, got, redirect, err, tc.want, tc.redirect, tc.err)
			}
		})
	}
}

func TestPathApplyNormalIsUnchanged(t *testing.T) {
	for _, p := range []string{"/", "/api/v1/users", "/a%20b", "/a%2Fb", "/.well-known/x", "/a..b/c.", "/a;b=c"} {
		got, _, err := normal.Apply(p)
		if err != nil || got != p {
			t.Errorf("Apply(%q) = %q, %v", p, got, err)
		}
	}
	n := testing.AllocsPerRun(100, func() { _, _, _ = secure.Apply("/api/v1/users/42") })
	if n != 0 {
		t.Fatalf("normal path: %v allocations", n)
	}
}

func FuzzPathApply(f *testing.F) {
	for _, s := range []string{"/a/../b", "/%2e%2e/x", "//a//b", "/a%2Fb%5c", "/a\\b", "/./", "/..", "/a/b/.", "/%25", "/%zz", "/a b\xff"} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, p string, flags uint8) {
		o := PathOptions{Normalize: flags&1 != 0, MergeSlashes: flags&2 != 0, EscapedSlashes: EscapedSlashes(flags >> 2 % 4)}
		p = "/" + p
		got, _, err := o.Apply(p)
		if err != nil {
			return
		}
		again, redirect, err := o.Apply(got)
		if err != nil || again != got || redirect {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v, %v", p, got, again, redirect, err)
		}
		if !o.isNormal(got) {
			t.Fatalf("%q -> %q, which the fast path does not find normal", p, got)
		}
		if o.Normalize {
			if strings.Contains(got, "/../") || strings.HasSuffix(got, "/..") || strings.Contains(got, "/./") || strings.HasSuffix(got, "/.") || strings.Contains(got, "\\") {
				t.Fatalf("%q -> %q has a dot segment or backslash", p, got)
			}
			for i := 0; i+2 < len(got); i++ {
				if got[i] == '%' && isUnreserved(unhex(got[i+1])<<4|unhex(got[i+2])) {
					t.Fatalf("%q -> %q keeps an encoded unreserved character", p, got)
				}
			}
		}
		if o.MergeSlashes && strings.Contains(got, "//") {
			t.Fatalf("%q -> %q has //", p, got)
		}
		if o.EscapedSlashes == UnescapeAndForward || o.EscapedSlashes == UnescapeAndRedirect {
			u := strings.ToUpper(got)
			if strings.Contains(u, "%2F") || strings.Contains(u, "%5C") {
				t.Fatalf("%q -> %q keeps an escaped slash", p, got)
			}
		}
		if !strings.HasPrefix(got, "/") {
			t.Fatalf("%q -> %q lost its leading slash", p, got)
		}
	})
}

func BenchmarkPathApply(b *testing.B) {
	for _, tc := range []struct{ name, path string }{
		{"normal", "/api/v1/users/42/orders"},
		{"dots", "/api/v1/../v2/./users/%2e%2e/orders"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := secure.Apply(tc.path); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
