package hcm

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// EscapedSlashes is path_with_escaped_slashes_action: what to do with
// %2F, %2f, %5C and %5c in a request path.
type EscapedSlashes uint8

// The actions, as Envoy names them. The zero value is Envoy's
// IMPLEMENTATION_SPECIFIC_DEFAULT, which is KEEP_UNCHANGED.
const (
	KeepUnchanged EscapedSlashes = iota
	RejectRequest
	UnescapeAndRedirect
	UnescapeAndForward
)

// PathOptions are a connection manager's path normalization settings. The
// zero value, Envoy's default, changes no path; requests with a fragment,
// control characters, an encoded NUL or a malformed percent-encoding are
// rejected whatever the options.
//
// Security: RBAC url_path and :path rules, route matches and the upstream
// all see the path after normalization. Without Normalize, MergeSlashes
// and an escaped-slash action other than KeepUnchanged, a rule on "/admin"
// can be bypassed with "/public/../admin", "//admin" or "/%2Fadmin" when
// the upstream normalizes on its own (see docs/rbac.md).
type PathOptions struct {
	// Normalize is normalize_path: RFC 3986 §6 normalization, i.e.
	// percent-decoding of unreserved characters, upper-case percent
	// escapes, percent-encoding of characters not allowed in a path,
	// backslash as slash, and removal of dot segments (§5.2.4).
	Normalize bool
	// MergeSlashes is merge_slashes: runs of slashes become one, after
	// Normalize.
	MergeSlashes bool
	// EscapedSlashes is path_with_escaped_slashes_action, applied before
	// Normalize.
	EscapedSlashes EscapedSlashes
}

func pathOptions(pb *hcmv3.HttpConnectionManager) (PathOptions, error) {
	o := PathOptions{Normalize: pb.GetNormalizePath().GetValue(), MergeSlashes: pb.GetMergeSlashes()}
	switch pb.GetPathWithEscapedSlashesAction() {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
		o.EscapedSlashes = KeepUnchanged
	case hcmv3.HttpConnectionManager_REJECT_REQUEST:
		o.EscapedSlashes = RejectRequest
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
		o.EscapedSlashes = UnescapeAndRedirect
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		o.EscapedSlashes = UnescapeAndForward
	default:
		return o, errors.New("path_with_escaped_slashes_action: unknown value")
	}
	return o, nil
}

// Reasons a path is refused (the Detail of the 400 answer).
var (
	errFragment     = errors.New("the request target has a fragment (#)")
	errControl      = errors.New("the path has a control character")
	errBadEscape    = errors.New("the path has a malformed percent-encoding")
	errEncodedNUL   = errors.New("the path has an encoded NUL (%00)")
	errEscapedSlash = errors.New("the path has an escaped slash (%2F or %5C) and path_with_escaped_slashes_action is REJECT_REQUEST")
	errDotParams    = errors.New("the path has a dot segment with parameters (\"..;\" or \".;\")")
)

// Apply returns the normalized form of the escaped path p and whether
// the request must be redirected to it (UnescapeAndRedirect found an
// escaped slash). A path that is already normal is returned as is,
// without allocating. Paths not starting with "/" (such as "*") are
// returned unchanged.
func (o PathOptions) Apply(p string) (out string, redirect bool, err error) {
	if p == "" || p[0] != '/' {
		return p, false, nil
	}
	if o.isNormal(p) {
		return p, false, nil
	}
	b := make([]byte, 0, len(p)+8)
	escaped := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return "", false, errControl
		case c == '#':
			return "", false, errFragment
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", false, errBadEscape
			}
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			switch {
			case v == 0:
				return "", false, errEncodedNUL
			case v == '/' || v == '\\':
				switch o.EscapedSlashes {
				case RejectRequest:
					return "", false, errEscapedSlash
				case UnescapeAndRedirect, UnescapeAndForward:
					escaped = true
					if v == '\\' && o.Normalize {
						v = '/'
					}
					b = append(b, v)
				default:
					b = o.appendEscape(b, p[i:i+3], v)
				}
			case o.Normalize && isUnreserved(v):
				b = append(b, v)
			default:
				b = o.appendEscape(b, p[i:i+3], v)
			}
			i += 2
		case c == '\\' && o.Normalize:
			b = append(b, '/')
		case o.Normalize && mustEscape(c):
			b = append(b, '%', upperHex[c>>4], upperHex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	if o.Normalize {
		if b, err = removeDotSegments(b); err != nil {
			return "", false, err
		}
	}
	if o.MergeSlashes {
		b = mergeSlashes(b)
	}
	return string(b), escaped && o.EscapedSlashes == UnescapeAndRedirect, nil
}

// appendEscape appends the escape raw (decoding to v), upper-cased when
// normalizing.
func (o PathOptions) appendEscape(b []byte, raw string, v byte) []byte {
	if o.Normalize {
		return append(b, '%', upperHex[v>>4], upperHex[v&0xf])
	}
	return append(b, raw...)
}

// isNormal reports whether Apply would return p unchanged and without
// error; it is the allocation-free fast path.
func (o PathOptions) isNormal(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f || c == '#':
			return false
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return false
			}
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			if v == 0 || (v == '/' || v == '\\') && o.EscapedSlashes != KeepUnchanged {
				return false
			}
			if o.Normalize && (isUnreserved(v) || isLowerHex(p[i+1]) || isLowerHex(p[i+2])) {
				return false
			}
			i += 2
		case c == '/':
			if o.MergeSlashes && i+1 < len(p) && p[i+1] == '/' {
				return false
			}
			if o.Normalize && isDotSegment(p[i+1:]) {
				return false
			}
		case o.Normalize && (c == '\\' || mustEscape(c)):
			return false
		}
	}
	return true
}

// isDotSegment reports whether s starts with the segment "." or "..",
// alone or with path parameters (".;x", "..;x").
func isDotSegment(s string) bool {
	if s == "" || s[0] != '.' {
		return false
	}
	if len(s) == 1 || s[1] == '/' || s[1] == ';' {
		return true
	}
	return s[1] == '.' && (len(s) == 2 || s[2] == '/' || s[2] == ';')
}

// removeDotSegments is RFC 3986 §5.2.4 for a path starting with "/".
// Segments are otherwise kept, empty ones included. A dot segment with
// path parameters ("/..;x/") is refused: RFC 3986 makes it an ordinary
// segment, but Java servlet containers (Tomcat, Jetty) strip the
// parameters and then treat it as a dot segment, so "/public/..;/admin"
// would reach their "/admin" past any rule on "/admin" (CVE-2020-1957
// class). Envoy passes it through.
func removeDotSegments(p []byte) ([]byte, error) {
	out := make([]byte, 1, len(p))
	out[0] = '/'
	rest := p[1:]
	for {
		seg, tail, more := cutSlash(rest)
		if dot, _, params := strings.Cut(string(seg), ";"); params && (dot == "." || dot == "..") {
			return nil, errDotParams
		}
		switch string(seg) {
		case ".":
		case "..":
			if len(out) > 1 {
				j := strings.LastIndexByte(string(out[:len(out)-1]), '/')
				out = out[:j+1]
			}
		default:
			out = append(out, seg...)
			if more {
				out = append(out, '/')
			}
		}
		if !more {
			return out, nil
		}
		rest = tail
	}
}

func cutSlash(b []byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == '/' {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

func mergeSlashes(p []byte) []byte {
	out := p[:0]
	for i, c := range p {
		if c == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		out = append(out, c)
	}
	return out
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isLowerHex(c byte) bool { return 'a' <= c && c <= 'f' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// isUnreserved is RFC 3986 §2.3.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// mustEscape reports whether a normalized path percent-encodes c: bytes
// outside ASCII and ASCII characters RFC 3986 allows in no path (Go's
// url.URL lets "[", "]" through, and so does Trellis).
func mustEscape(c byte) bool {
	if c >= 0x80 {
		return true
	}
	switch c {
	case ' ', '"', '<', '>', '^', '`', '{', '|', '}', '?':
		return true
	}
	return false
}

// Reasons for requests refused or redirected by path normalization.
const (
	ReasonInvalidPath            = "path_normalization_failed"
	ReasonEscapedSlashesRedirect = "escaped_slashes_redirect"
)

// normalizePath applies the configuration's path rules to the request
// before routing and before any filter: it rewrites r.URL to the
// normalized path, or answers the request (400, or a 307 redirect for
// UNESCAPE_AND_REDIRECT) and returns false.
func (s *stream) normalizePath() (string, bool) {
	r := s.r
	if strings.IndexByte(r.RequestURI, '#') >= 0 {
		s.localReply(http.StatusBadRequest, 0, ReasonInvalidPath, errFragment.Error())
		return "", false
	}
	p := r.URL.EscapedPath()
	np, redirect, err := s.cfg.Paths.Apply(p)
	if err != nil {
		s.localReply(http.StatusBadRequest, 0, ReasonInvalidPath, err.Error())
		return "", false
	}
	if redirect {
		if isGRPC(r) {
			// Envoy: gRPC requests are rejected with INTERNAL instead.
			s.localReply(http.StatusBadRequest, 0, ReasonEscapedSlashesRedirect, "escaped slashes in a gRPC path")
			return "", false
		}
		loc := np
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		h := s.w.Header()
		h.Set("Location", loc)
		s.reason = ReasonEscapedSlashesRedirect
		s.serverHeader(h)
		s.status, s.wroteHeader = http.StatusTemporaryRedirect, true
		s.w.WriteHeader(http.StatusTemporaryRedirect)
		return "", false
	}
	if np != p {
		u := *r.URL
		u.Path, err = url.PathUnescape(np)
		if err != nil { // cannot happen: np is validly encoded
			s.localReply(http.StatusBadRequest, 0, ReasonInvalidPath, errBadEscape.Error())
			return "", false
		}
		u.RawPath = np
		r.URL = &u
	}
	return np, true
}
