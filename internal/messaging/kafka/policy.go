package kafka

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Operation is what a client does to a topic.
type Operation uint8

// Operations a topic policy decides. Produce is a Produce request,
// Consume a Fetch request, Describe a topic in a Metadata response.
const (
	Produce Operation = iota
	Consume
	Describe
)

var opNames = [...]string{Produce: "produce", Consume: "consume", Describe: "describe"}

func (o Operation) String() string { return opNames[o] }

// Principal is who is on the other side of a connection.
type Principal struct {
	// Addr is the source address of the connection.
	Addr netip.Addr
	// SPIFFEID is the URI SAN of the peer's verified certificate
	// (downstream mutual TLS); empty without one.
	SPIFFEID string
}

// RuleSpec is one rule as configured.
type RuleSpec struct {
	// Action is "ALLOW", "DENY" or "AUDIT". AUDIT rules never decide:
	// every one that matches a request is reported (Policy.Audited), and
	// the other rules decide as if they were not there.
	Action string
	// Operations are "produce", "consume", "describe"; at least one.
	Operations []string
	// Topics are exact names, or prefixes ending in "*" ("orders.*"); "*"
	// is every topic. At least one.
	Topics []string
	// Principals are "*" or "any" (everyone), a SPIFFE ID ("spiffe://..."
	// exact, or a prefix ending in "*"), or a source CIDR or IP address.
	// Empty means everyone.
	Principals []string
}

// PolicySpec is a topic policy as configured: rules tried in order, the
// first whose operation, topic and principal all match decides; with none,
// DefaultAction ("ALLOW" or "DENY"; empty is DENY).
type PolicySpec struct {
	Rules         []RuleSpec
	DefaultAction string
}

// Policy is a compiled PolicySpec. It is immutable and safe for concurrent
// use.
type Policy struct {
	rules    []rule
	audit    []rule // AUDIT rules, in order
	allowDef bool
}

type rule struct {
	allow    bool
	ops      [3]bool
	topics   matcher
	anyone   bool
	prefixes []netip.Prefix
	spiffe   matcher
}

// matcher matches names exactly or by prefix.
type matcher struct {
	all      bool
	exact    map[string]bool
	prefixes []string
}

func (m *matcher) add(s string) {
	switch {
	case s == "*":
		m.all = true
	case strings.HasSuffix(s, "*"):
		m.prefixes = append(m.prefixes, strings.TrimSuffix(s, "*"))
	default:
		if m.exact == nil {
			m.exact = map[string]bool{}
		}
		m.exact[s] = true
	}
}

func (m *matcher) match(s string) bool {
	if m.all || m.exact[s] {
		return true
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// NewPolicy compiles spec. Errors name fields (rules[1].topics[0]) and all
// are reported at once.
func NewPolicy(spec PolicySpec) (*Policy, error) {
	var errs []error
	p := &Policy{}
	var err error
	if p.allowDef, err = parseAction(spec.DefaultAction, false); err != nil {
		errs = append(errs, fmt.Errorf("default_action: %w", err))
	}
	for i, rs := range spec.Rules {
		path := fmt.Sprintf("rules[%d]", i)
		r := rule{}
		audit := strings.EqualFold(rs.Action, "AUDIT")
		if !audit {
			if r.allow, err = parseAction(rs.Action, true); err != nil {
				errs = append(errs, fmt.Errorf("%s.action: %w (or AUDIT)", path, err))
			}
		}
		if len(rs.Operations) == 0 {
			errs = append(errs, fmt.Errorf("%s.operations: at least one of produce, consume, describe is required", path))
		}
		for j, o := range rs.Operations {
			switch strings.ToLower(o) {
			case "produce":
				r.ops[Produce] = true
			case "consume":
				r.ops[Consume] = true
			case "describe":
				r.ops[Describe] = true
			default:
				errs = append(errs, fmt.Errorf("%s.operations[%d]: %q is not one of produce, consume, describe", path, j, o))
			}
		}
		if len(rs.Topics) == 0 {
			errs = append(errs, fmt.Errorf("%s.topics: at least one topic or prefix is required", path))
		}
		for j, t := range rs.Topics {
			if t == "" {
				errs = append(errs, fmt.Errorf("%s.topics[%d]: empty", path, j))
				continue
			}
			r.topics.add(t)
		}
		r.anyone = len(rs.Principals) == 0
		for j, pr := range rs.Principals {
			switch {
			case pr == "*" || strings.EqualFold(pr, "any"):
				r.anyone = true
			case strings.HasPrefix(pr, "spiffe://"):
				r.spiffe.add(pr)
			default:
				pfx, err := parsePrefix(pr)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s.principals[%d]: %q is not \"*\", a spiffe:// ID or a CIDR", path, j, pr))
					continue
				}
				r.prefixes = append(r.prefixes, pfx)
			}
		}
		if audit {
			p.audit = append(p.audit, r)
		} else {
			p.rules = append(p.rules, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseAction(s string, required bool) (bool, error) {
	switch strings.ToUpper(s) {
	case "ALLOW":
		return true, nil
	case "DENY":
		return false, nil
	case "":
		if !required {
			return false, nil
		}
		return false, errors.New("required (ALLOW or DENY)")
	}
	return false, fmt.Errorf("%q is not ALLOW or DENY", s)
}

// decide returns the decision of the first matching rule, or the default;
// matched reports whether a rule matched.
func (p *Policy) decide(op Operation, topic string, pr Principal) (allow, matched bool) {
	for i := range p.rules {
		r := &p.rules[i]
		if r.ops[op] && r.topics.match(topic) && r.principal(pr) {
			return r.allow, true
		}
	}
	return p.allowDef, false
}

func (r *rule) principal(pr Principal) bool {
	if r.anyone {
		return true
	}
	if pr.SPIFFEID != "" && r.spiffe.match(pr.SPIFFEID) {
		return true
	}
	a := pr.Addr.Unmap()
	for _, pfx := range r.prefixes {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// Allowed decides op on topic for pr. A topic the request names only by
// id (empty name) is refused. Describe is also allowed where produce or
// consume is (as Kafka's WRITE and READ imply DESCRIBE), unless a rule
// denies describe explicitly.
func (p *Policy) Allowed(op Operation, topic string, pr Principal) bool {
	if topic == "" {
		return false
	}
	allow, matched := p.decide(op, topic, pr)
	if allow || op != Describe || matched {
		return allow
	}
	if a, _ := p.decide(Produce, topic, pr); a {
		return true
	}
	a, _ := p.decide(Consume, topic, pr)
	return a
}

// HasAudit reports whether p has AUDIT rules.
func (p *Policy) HasAudit() bool { return len(p.audit) > 0 }

// Audited reports whether an AUDIT rule matches op on topic by pr.
func (p *Policy) Audited(op Operation, topic string, pr Principal) bool {
	for i := range p.audit {
		r := &p.audit[i]
		if r.ops[op] && r.topics.match(topic) && r.principal(pr) {
			return true
		}
	}
	return false
}
