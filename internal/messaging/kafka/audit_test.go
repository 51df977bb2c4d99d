package kafka

import (
	"net/netip"
	"testing"
)

// TestPolicyAudit: AUDIT rules report matches and never decide.
func TestPolicyAudit(t *testing.T) {
	p, err := NewPolicy(PolicySpec{DefaultAction: "DENY", Rules: []RuleSpec{
		{Action: "AUDIT", Operations: []string{"produce"}, Topics: []string{"orders.*"}, Principals: []string{"spiffe://td/m/web"}},
		{Action: "ALLOW", Operations: []string{"produce"}, Topics: []string{"orders.eu"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	web := Principal{Addr: netip.MustParseAddr("10.0.0.1"), SPIFFEID: "spiffe://td/m/web"}
	other := Principal{Addr: netip.MustParseAddr("10.0.0.2"), SPIFFEID: "spiffe://td/m/other"}
	for _, tc := range []struct {
		name           string
		op             Operation
		topic          string
		pr             Principal
		allowed, audit bool
	}{
		{"audited and allowed", Produce, "orders.eu", web, true, true},
		{"audited and refused by the default", Produce, "orders.us", web, false, true},
		{"another source", Produce, "orders.eu", other, true, false},
		{"another operation", Consume, "orders.eu", web, false, false},
	} {
		if got := p.Allowed(tc.op, tc.topic, tc.pr); got != tc.allowed {
			t.Errorf("%s: Allowed = %v, want %v", tc.name, got, tc.allowed)
		}
		if got := p.Audited(tc.op, tc.topic, tc.pr); got != tc.audit {
			t.Errorf("%s: Audited = %v, want %v", tc.name, got, tc.audit)
		}
	}
	if !p.HasAudit() {
		t.Error("HasAudit false")
	}
	if _, err := NewPolicy(PolicySpec{DefaultAction: "AUDIT"}); err == nil {
		t.Error("default_action AUDIT accepted")
	}
}
