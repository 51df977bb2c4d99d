package natsfilter

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/messaging/nats"
)

// TypeURL is the type_url, inside an xds.type.v3.TypedStruct, that selects
// this filter in a listener's filter chain.
const TypeURL = "type.googleapis.com/trellis.filters.network.nats.v1.Nats"

// MaxFrameBytesLimit bounds max_frame_bytes (64 MiB, nats-server's own
// ceiling for max_payload).
const MaxFrameBytesLimit = 64 << 20

// Action is what a policy rule does.
type Action uint8

// Actions.
const (
	Allow Action = iota
	Deny
	// Audit rules never decide: an operation one matches is reported
	// (logged and counted) and the other rules decide as if it were not
	// there. They are kept in Config.Audit.
	Audit
)

func (a Action) String() string {
	switch a {
	case Deny:
		return "DENY"
	case Audit:
		return "AUDIT"
	}
	return "ALLOW"
}

// Config is a validated nats filter configuration.
type Config struct {
	// StatPrefix labels the filter's metrics. Required.
	StatPrefix string
	// MaxFrameBytes bounds a message (headers and payload); a larger one
	// closes the connection. Default nats.DefaultMaxPayload (1 MiB, as
	// nats-server's max_payload).
	MaxFrameBytes int
	// DefaultAction applies when no rule matches. Default Allow.
	DefaultAction Action
	// InjectTraceparent turns a PUB into an HPUB carrying a new W3C
	// traceparent header when both the client (CONNECT headers) and the
	// server (INFO headers) support headers. Default off.
	InjectTraceparent bool
	// Policies are evaluated in order; the first matching rule decides.
	Policies []Rule
	// Audit are the AUDIT rules of the configured policies, in order.
	Audit []Rule
}

// Rule is one policy rule.
type Rule struct {
	Action    Action
	Publish   bool // applies to PUB and HPUB
	Subscribe bool // applies to SUB
	// Subjects are NATS subject patterns. An ALLOW rule matches an
	// operation whose subject lies within one of them; a DENY rule matches
	// one whose subject overlaps one of them (so a subscription to "a.>"
	// is denied by DENY "a.secret").
	Subjects []string
	// Principals: empty matches every connection.
	Principals []Principal
}

// Principal identifies connections: by source address prefix, by the
// SPIFFE ID of the downstream TLS client certificate (exact, or a prefix
// when written with a trailing "*"), or any.
type Principal struct {
	Any          bool
	Prefix       netip.Prefix
	SPIFFE       string
	SPIFFEPrefix bool
}

// Parse validates a TypedStruct's value as the nats filter configuration.
// Errors name the offending field below "value"; unknown fields are
// rejected.
func Parse(ts *xdstypev3.TypedStruct) (*Config, error) {
	if ts.GetTypeUrl() != TypeURL {
		return nil, fmt.Errorf("type_url: %q is not %q", ts.GetTypeUrl(), TypeURL)
	}
	c := &Config{MaxFrameBytes: nats.DefaultMaxPayload}
	var errs []error
	fail := func(path, format string, a ...any) {
		errs = append(errs, fmt.Errorf("value.%s: %s", path, fmt.Sprintf(format, a...)))
	}
	for k, v := range ts.GetValue().GetFields() {
		switch k {
		case "stat_prefix":
			s, ok := str(v)
			if !ok {
				fail(k, "want a string")
			}
			c.StatPrefix = s
		case "max_frame_bytes":
			n, ok := integer(v)
			if !ok || n < 1 || n > MaxFrameBytesLimit {
				fail(k, "want an integer in [1, %d]", MaxFrameBytesLimit)
			}
			c.MaxFrameBytes = n
		case "default_action":
			c.DefaultAction = parseAction(v, k, fail)
		case "inject_traceparent":
			b, ok := v.GetKind().(*structpb.Value_BoolValue)
			if !ok {
				fail(k, "want a boolean")
			} else {
				c.InjectTraceparent = b.BoolValue
			}
		case "policies":
			l := v.GetListValue()
			if l == nil {
				fail(k, "want a list")
				break
			}
			for i, rv := range l.GetValues() {
				r := parseRule(rv, fmt.Sprintf("policies[%d]", i), fail)
				if r.Action == Audit {
					c.Audit = append(c.Audit, r)
				} else {
					c.Policies = append(c.Policies, r)
				}
			}
		default:
			fail(k, "unknown field (known: stat_prefix, max_frame_bytes, default_action, inject_traceparent, policies)")
		}
	}
	if c.StatPrefix == "" {
		fail("stat_prefix", "required")
	}
	if len(errs) > 0 {
		return nil, errors.Join(sortErrs(errs)...)
	}
	return c, nil
}

func parseRule(v *structpb.Value, path string, fail func(path, format string, a ...any)) Rule {
	var r Rule
	s := v.GetStructValue()
	if s == nil {
		fail(path, "want an object")
		return r
	}
	hasAction, nSubjects := false, 0
	for k, fv := range s.GetFields() {
		p := path + "." + k
		switch k {
		case "action":
			hasAction = true
			if a, _ := str(fv); a == "AUDIT" {
				r.Action = Audit
			} else {
				r.Action = parseAction(fv, p, fail)
			}
		case "operations":
			for i, s := range stringList(fv, p, fail) {
				switch strings.ToLower(s) {
				case "publish":
					r.Publish = true
				case "subscribe":
					r.Subscribe = true
				default:
					fail(fmt.Sprintf("%s[%d]", p, i), "%q is not publish or subscribe", s)
				}
			}
		case "subjects":
			list := stringList(fv, p, fail)
			nSubjects = len(list)
			for i, s := range list {
				if err := nats.ValidatePattern(s); err != nil {
					fail(fmt.Sprintf("%s[%d]", p, i), "%q: %v", s, err)
					continue
				}
				r.Subjects = append(r.Subjects, s)
			}
		case "principals":
			for i, s := range stringList(fv, p, fail) {
				pr, err := parsePrincipal(s)
				if err != nil {
					fail(fmt.Sprintf("%s[%d]", p, i), "%v", err)
					continue
				}
				r.Principals = append(r.Principals, pr)
			}
		default:
			fail(p, "unknown field (known: action, operations, subjects, principals)")
		}
	}
	if !hasAction {
		fail(path+".action", "required (ALLOW, DENY or AUDIT)")
	}
	if !r.Publish && !r.Subscribe {
		fail(path+".operations", "at least one of publish, subscribe is required")
	}
	if nSubjects == 0 {
		fail(path+".subjects", "at least one subject pattern is required (\">\" for all)")
	}
	return r
}

func parsePrincipal(s string) (Principal, error) {
	switch {
	case s == "any":
		return Principal{Any: true}, nil
	case strings.HasPrefix(s, "spiffe://"):
		if strings.HasSuffix(s, "*") {
			return Principal{SPIFFE: strings.TrimSuffix(s, "*"), SPIFFEPrefix: true}, nil
		}
		if strings.Contains(s, "*") {
			return Principal{}, fmt.Errorf("%q: '*' is allowed only at the end of a SPIFFE ID", s)
		}
		return Principal{SPIFFE: s}, nil
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Principal{}, fmt.Errorf("%q is not a CIDR: %v", s, err)
		}
		return Principal{Prefix: p.Masked()}, nil
	default:
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Principal{}, fmt.Errorf("%q is not \"any\", a spiffe:// ID, a CIDR or an IP address", s)
		}
		return Principal{Prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
}

func parseAction(v *structpb.Value, path string, fail func(path, format string, a ...any)) Action {
	s, _ := str(v)
	switch s {
	case "ALLOW":
		return Allow
	case "DENY":
		return Deny
	}
	fail(path, "want ALLOW or DENY")
	return Allow
}

// stringList reads a list of strings.
func stringList(v *structpb.Value, path string, fail func(path, format string, a ...any)) []string {
	l := v.GetListValue()
	if l == nil {
		fail(path, "want a list of strings")
		return nil
	}
	out := make([]string, 0, len(l.GetValues()))
	for i, e := range l.GetValues() {
		s, ok := str(e)
		if !ok {
			fail(fmt.Sprintf("%s[%d]", path, i), "want a string")
			continue
		}
		out = append(out, s)
	}
	return out
}

func str(v *structpb.Value) (string, bool) {
	s, ok := v.GetKind().(*structpb.Value_StringValue)
	if !ok {
		return "", false
	}
	return s.StringValue, true
}

func integer(v *structpb.Value) (int, bool) {
	n, ok := v.GetKind().(*structpb.Value_NumberValue)
	if !ok || n.NumberValue != math.Trunc(n.NumberValue) || math.Abs(n.NumberValue) > 1<<52 {
		return 0, false
	}
	return int(n.NumberValue), true
}

// sortErrs orders errors by text, so a document's errors read the same on
// every run (struct fields come from a map).
func sortErrs(errs []error) []error {
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}
