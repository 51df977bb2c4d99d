package v1alpha1

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// AccessActions lists the actions an AccessPolicy may take.
func AccessActions() []AccessAction { return []AccessAction{AccessAllow, AccessDeny, AccessAudit} }

// maxAccessList bounds every list of an AccessPolicy but targetRefs.
const maxAccessList = 64

var (
	methodRE      = regexp.MustCompile(`^[A-Z][A-Z0-9_-]*$`)
	templateVarRE = regexp.MustCompile(`^\{[A-Za-z_][A-Za-z0-9_]*\}$`)
)

func validateAccessPolicySpec(s *AccessPolicySpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	tp := p.Child("targetRefs")
	switch {
	case len(s.TargetRefs) == 0:
		errs = append(errs, field.Required(tp, "at least one Service"))
	case len(s.TargetRefs) > 16:
		errs = append(errs, field.TooMany(tp, len(s.TargetRefs), 16))
	}
	seen := map[gwv1.LocalPolicyTargetReference]bool{}
	for i, t := range s.TargetRefs {
		ip := tp.Index(i)
		if t.Group != "" {
			errs = append(errs, field.NotSupported(ip.Child("group"), t.Group, []string{""}))
		}
		if t.Kind != KindService {
			errs = append(errs, field.NotSupported(ip.Child("kind"), t.Kind, serviceKindStr))
		}
		errs = append(errs, objectName(ip.Child("name"), string(t.Name))...)
		if seen[t] {
			errs = append(errs, field.Duplicate(ip, t))
		}
		seen[t] = true
	}
	switch {
	case s.Action == "":
		errs = append(errs, field.Required(p.Child("action"), "ALLOW, DENY or AUDIT"))
	case s.Action != AccessAllow && s.Action != AccessDeny && s.Action != AccessAudit:
		errs = append(errs, field.NotSupported(p.Child("action"), s.Action, AccessActions()))
	}
	rp := p.Child("rules")
	switch {
	case len(s.Rules) == 0:
		errs = append(errs, field.Required(rp, "at least one rule"))
	case len(s.Rules) > maxAccessList:
		errs = append(errs, field.TooMany(rp, len(s.Rules), maxAccessList))
	}
	for i := range s.Rules {
		errs = append(errs, validateAccessRule(&s.Rules[i], rp.Index(i))...)
	}
	return errs
}

func validateAccessRule(r *AccessRule, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	fp := p.Child("from")
	switch {
	case len(r.From) == 0:
		errs = append(errs, field.Required(fp, "at least one source (any: true for everyone)"))
	case len(r.From) > maxAccessList:
		errs = append(errs, field.TooMany(fp, len(r.From), maxAccessList))
	}
	for i := range r.From {
		errs = append(errs, validateAccessSource(&r.From[i], fp.Index(i))...)
	}
	tp := p.Child("to")
	if len(r.To) > maxAccessList {
		errs = append(errs, field.TooMany(tp, len(r.To), maxAccessList))
	}
	for i := range r.To {
		errs = append(errs, validateAccessOperation(&r.To[i], tp.Index(i))...)
	}
	return errs
}

func validateAccessSource(s *AccessSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if s.Service != "" {
		n++
		errs = append(errs, dnsLabel(p.Child("service"), s.Service)...)
	}
	if s.Mesh != "" {
		if s.Service == "" {
			errs = append(errs, field.Forbidden(p.Child("mesh"), "only with service"))
		} else {
			errs = append(errs, dnsLabel(p.Child("mesh"), s.Mesh)...)
		}
	}
	if s.AnyAuthenticated {
		n++
	}
	if s.Any {
		n++
	}
	if len(s.IPBlocks) > 0 {
		n++
		errs = append(errs, validateIPBlocks(s.IPBlocks, p.Child("ipBlocks"))...)
	}
	if n != 1 {
		errs = append(errs, field.Invalid(p, s, "exactly one of service, anyAuthenticated, any, ipBlocks must be set"))
	}
	return errs
}

func validateIPBlocks(blocks []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(blocks) > maxAccessList {
		errs = append(errs, field.TooMany(p, len(blocks), maxAccessList))
	}
	seen := map[netip.Prefix]bool{}
	for i, b := range blocks {
		ip := p.Index(i)
		pfx, err := netip.ParsePrefix(b)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(ip, b, "must be a CIDR such as 10.0.0.0/8, 192.0.2.7/32 or 2001:db8::/32"))
		case pfx.Addr().Zone() != "":
			errs = append(errs, field.Invalid(ip, b, "must not have an IPv6 zone"))
		case pfx.Masked() != pfx:
			errs = append(errs, field.Invalid(ip, b, fmt.Sprintf("has host bits set: did you mean %s?", pfx.Masked())))
		case seen[pfx]:
			errs = append(errs, field.Duplicate(ip, b))
		}
		if err == nil {
			seen[pfx] = true
		}
	}
	return errs
}

func validateAccessOperation(o *AccessOperation, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	http := len(o.Methods)+len(o.Paths)+len(o.Hosts)+len(o.Headers)+len(o.GRPCMethods) > 0
	if len(o.Ports) == 0 && !http && o.Kafka == nil && o.NATS == nil {
		return field.ErrorList{field.Required(p, "at least one of ports, methods, paths, hosts, headers, grpcMethods, kafka, nats (leave to out to match every request)")}
	}
	errs = append(errs, validateAccessMessaging(o, http, p)...)
	for _, l := range []struct {
		name string
		n    int
	}{{"ports", len(o.Ports)}, {"methods", len(o.Methods)}, {"paths", len(o.Paths)},
		{"hosts", len(o.Hosts)}, {"headers", len(o.Headers)}, {"grpcMethods", len(o.GRPCMethods)}} {
		if l.n > maxAccessList {
			errs = append(errs, field.TooMany(p.Child(l.name), l.n, maxAccessList))
		}
	}
	ports := map[int32]bool{}
	for i, v := range o.Ports {
		ip := p.Child("ports").Index(i)
		errs = append(errs, port(ip, v)...)
		if ports[v] {
			errs = append(errs, field.Duplicate(ip, v))
		}
		ports[v] = true
	}
	methods := map[string]bool{}
	for i, m := range o.Methods {
		ip := p.Child("methods").Index(i)
		switch {
		case !methodRE.MatchString(m):
			errs = append(errs, field.Invalid(ip, m, "must be an upper-case HTTP method such as GET"))
		case methods[m]:
			errs = append(errs, field.Duplicate(ip, m))
		}
		methods[m] = true
	}
	for i := range o.Paths {
		errs = append(errs, validateAccessPath(&o.Paths[i], p.Child("paths").Index(i))...)
	}
	hosts := map[string]bool{}
	for i, h := range o.Hosts {
		ip := p.Child("hosts").Index(i)
		switch {
		case len(h) > 253:
			errs = append(errs, field.TooLong(ip, h, 253))
		case !hostnameRE.MatchString(h):
			errs = append(errs, field.Invalid(ip, h, `must be a lower-case host name without port, optionally starting with "*."`))
		case hosts[h]:
			errs = append(errs, field.Duplicate(ip, h))
		}
		hosts[h] = true
	}
	for i := range o.Headers {
		errs = append(errs, validateAccessHeader(&o.Headers[i], p.Child("headers").Index(i))...)
	}
	for i, g := range o.GRPCMethods {
		ip := p.Child("grpcMethods").Index(i)
		switch {
		case g.Service == "":
			errs = append(errs, field.Required(ip.Child("service"), `the fully qualified service, e.g. "shop.v1.Cart"`))
		case strings.HasPrefix(g.Service, ".") || !grpcServiceRE.MatchString(g.Service):
			errs = append(errs, field.Invalid(ip.Child("service"), g.Service, `must be a fully qualified gRPC service name, e.g. "shop.v1.Cart"`))
		}
		if g.Method != "" && !grpcMethodRE.MatchString(g.Method) {
			errs = append(errs, field.Invalid(ip.Child("method"), g.Method, "must be a gRPC method name (letters, digits, '_')"))
		}
	}
	return errs
}

func validateAccessPath(m *AccessPathMatch, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	for _, v := range []string{m.Exact, m.Prefix, m.Template, m.Regex} {
		if v != "" {
			n++
			if len(v) > 1024 {
				errs = append(errs, field.TooLong(p, v, 1024))
			}
		}
	}
	if n != 1 {
		return append(errs, field.Invalid(p, m, "exactly one of exact, prefix, template, regex must be set"))
	}
	if len(errs) > 0 {
		return errs
	}
	switch {
	case m.Exact != "":
		if msg := normalizedPath(m.Exact, false); msg != "" {
			errs = append(errs, field.Invalid(p.Child("exact"), m.Exact, msg))
		}
	case m.Prefix != "":
		if msg := normalizedPath(m.Prefix, true); msg != "" {
			errs = append(errs, field.Invalid(p.Child("prefix"), m.Prefix, msg))
		}
	case m.Template != "":
		if _, err := PathTemplateRegex(m.Template); err != nil {
			errs = append(errs, field.Invalid(p.Child("template"), m.Template, err.Error()))
		}
	default:
		if _, err := regexp.Compile(m.Regex); err != nil {
			errs = append(errs, field.Invalid(p.Child("regex"), m.Regex, "must be an RE2 regular expression: "+err.Error()))
		}
	}
	return errs
}

// normalizedPath explains why a literal path (or, with prefix, the start of
// one) could never match a normalized request path, or returns "". The
// proxy decodes escaped unreserved characters, upper-cases other escapes,
// removes dot segments, merges slashes and decodes or refuses %2F and %5C
// before an access policy sees the path.
func normalizedPath(v string, prefix bool) string {
	switch {
	case !strings.HasPrefix(v, "/"):
		return "must start with '/'"
	case !pathCharsRE.MatchString(v):
		return "must contain only URL path characters or %-escapes"
	case strings.Contains(v, "//"):
		return "must not contain '//': requests' slashes are merged before matching"
	}
	segs := strings.Split(v, "/")
	for i, s := range segs {
		if (s == "." || s == "..") && !(prefix && i == len(segs)-1) {
			return "must not contain '.' or '..' segments: requests' dot segments are removed before matching"
		}
	}
	for i := strings.IndexByte(v, '%'); i >= 0; i = strings.IndexByte(v, '%') {
		esc := v[i+1 : i+3]
		b := unhex(esc[0])<<4 | unhex(esc[1])
		switch {
		case esc != strings.ToUpper(esc):
			return fmt.Sprintf("%%%s never appears in a normalized path: write %%%s", esc, strings.ToUpper(esc))
		case b == '/' || b == '\\':
			return fmt.Sprintf("%%%s never appears in a normalized path: escaped slashes are decoded or refused", esc)
		case isUnreserved(b):
			return fmt.Sprintf("%%%s never appears in a normalized path: write %q", esc, string(rune(b)))
		}
		v = v[i+3:]
	}
	return ""
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func isUnreserved(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '.' || b == '_' || b == '~'
}

// PathTemplateRegex checks a path template and returns the RE2 regular
// expression, anchored at both ends, that matches the same normalized
// paths. A template is '/' and segments separated by '/': a literal, a
// variable "{name}" matching one non-empty segment, or, as the last
// segment only, "{**}" matching the rest of the path, possibly empty
// ("/static/{**}" matches "/static", "/static/" and "/static/a/b").
// Literals follow the rules of an exact path. Errors say what is wrong.
func PathTemplateRegex(tmpl string) (string, error) {
	if !strings.HasPrefix(tmpl, "/") {
		return "", fmt.Errorf("must start with '/'")
	}
	segs := strings.Split(tmpl[1:], "/")
	var b strings.Builder
	b.WriteByte('^')
	names := map[string]bool{}
	for i, s := range segs {
		switch {
		case s == "{**}":
			if i != len(segs)-1 {
				return "", fmt.Errorf("{**} must be the last segment")
			}
			b.WriteString("(?:/.*)?")
		case templateVarRE.MatchString(s):
			if names[s] {
				return "", fmt.Errorf("variable %s appears twice", s)
			}
			names[s] = true
			b.WriteString("/[^/]+")
		case strings.ContainsAny(s, "{}"):
			return "", fmt.Errorf("segment %q: a variable is a whole segment, {name} (letters, digits, '_') or {**}", s)
		case s == "" && i != len(segs)-1:
			return "", fmt.Errorf("must not contain '//': requests' slashes are merged before matching")
		default:
			if s != "" {
				if msg := normalizedPath("/"+s, false); msg != "" {
					return "", fmt.Errorf("segment %q: %s", s, msg)
				}
			}
			b.WriteString("/" + regexp.QuoteMeta(s))
		}
	}
	b.WriteByte('$')
	return b.String(), nil
}

func validateAccessHeader(h *AccessHeaderMatch, p *field.Path) field.ErrorList {
	errs := gwHeaderName(p.Child("name"), h.Name)
	if strings.EqualFold(h.Name, "host") {
		errs = append(errs, field.Invalid(p.Child("name"), h.Name, "use hosts to match the Host or :authority"))
	}
	n := 0
	for _, v := range []struct {
		name, v string
	}{{"exact", h.Exact}, {"prefix", h.Prefix}, {"regex", h.Regex}} {
		if v.v == "" {
			continue
		}
		n++
		if len(v.v) > 4096 {
			errs = append(errs, field.TooLong(p.Child(v.name), v.v, 4096))
		}
	}
	if h.Present {
		n++
	}
	if n != 1 {
		return append(errs, field.Invalid(p, h, "exactly one of exact, prefix, regex, present must be set"))
	}
	if h.Regex != "" {
		if _, err := regexp.Compile(h.Regex); err != nil {
			errs = append(errs, field.Invalid(p.Child("regex"), h.Regex, "must be an RE2 regular expression: "+err.Error()))
		}
	}
	return errs
}
