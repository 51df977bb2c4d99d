package natsfilter

import (
	"net/netip"
	"strings"
	"testing"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"
)

func typed(t testing.TB, v map[string]any) *xdstypev3.TypedStruct {
	t.Helper()
	s, err := structpb.NewStruct(v)
	if err != nil {
		t.Fatal(err)
	}
	return &xdstypev3.TypedStruct{TypeUrl: TypeURL, Value: s}
}

func TestParse(t *testing.T) {
	got, err := Parse(typed(t, map[string]any{
		"stat_prefix": "orders", "max_frame_bytes": 2048, "default_action": "DENY", "inject_traceparent": true,
		"policies": []any{
			map[string]any{"action": "ALLOW", "operations": []any{"publish", "SUBSCRIBE"}, "subjects": []any{"orders.>"},
				"principals": []any{"10.0.0.0/8", "192.168.1.7", "spiffe://mesh/a", "spiffe://mesh/ns/b/*", "any"}},
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{StatPrefix: "orders", MaxFrameBytes: 2048, DefaultAction: Deny, InjectTraceparent: true, Policies: []Rule{{
		Action: Allow, Publish: true, Subscribe: true, Subjects: []string{"orders.>"},
		Principals: []Principal{
			{Prefix: netip.MustParsePrefix("10.0.0.0/8")}, {Prefix: netip.MustParsePrefix("192.168.1.7/32")},
			{SPIFFE: "spiffe://mesh/a"}, {SPIFFE: "spiffe://mesh/ns/b/", SPIFFEPrefix: true}, {Any: true},
		},
	}}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	d, err := Parse(typed(t, map[string]any{"stat_prefix": "x"}))
	if err != nil || d.MaxFrameBytes != 1<<20 || d.DefaultAction != Allow || d.enforcing() {
		t.Fatalf("defaults: %+v %v", d, err)
	}
}

func TestParseErrors(t *testing.T) {
	rule := func(kv ...any) map[string]any {
		m := map[string]any{"action": "DENY", "operations": []any{"publish"}, "subjects": []any{"a"}}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
				continue
			}
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		v    map[string]any
		want string
	}{
		{name: "stat_prefix required", v: map[string]any{}, want: "value.stat_prefix: required"},
		{name: "unknown field", v: map[string]any{"stat_prefix": "x", "max_payload": 1}, want: "value.max_payload: unknown field"},
		{name: "max_frame_bytes zero", v: map[string]any{"stat_prefix": "x", "max_frame_bytes": 0}, want: "value.max_frame_bytes: want an integer in [1, 67108864]"},
		{name: "max_frame_bytes fraction", v: map[string]any{"stat_prefix": "x", "max_frame_bytes": 1.5}, want: "value.max_frame_bytes: want an integer"},
		{name: "default_action", v: map[string]any{"stat_prefix": "x", "default_action": "allow"}, want: "value.default_action: want ALLOW or DENY"},
		{name: "inject_traceparent type", v: map[string]any{"stat_prefix": "x", "inject_traceparent": "yes"}, want: "value.inject_traceparent: want a boolean"},
		{name: "policies not a list", v: map[string]any{"stat_prefix": "x", "policies": "all"}, want: "value.policies: want a list"},
		{name: "rule unknown field", v: map[string]any{"stat_prefix": "x", "policies": []any{rule("subject", "a")}}, want: "value.policies[0].subject: unknown field"},
		{name: "rule action required", v: map[string]any{"stat_prefix": "x", "policies": []any{rule("action", nil)}}, want: "value.policies[0].action: required"},
		{name: "rule operation", v: map[string]any{"stat_prefix": "x", "policies": []any{rule("operations", []any{"request"})}}, want: `value.policies[0].operations[0]: "request" is not publish or subscribe`},
		{name: "rule operations empty", v: map[string]any{"stat_prefix": "x", "policies": []any{rule("operations", []any{})}}, want: "value.policies[0].operations: at least one"},
		{name: "rule subjects missing", v: map[string]any{"stat_prefix": "x", "policies": []any{rule("subjects", nil)}}, want: "value.policies[0].subjects: at least one subject pattern is required"},
		{name: "rule bad subject", v: map[string]any{"stat_prefix": "x", "policies": []any{rule("subjects", []any{"a.>.b"})}}, want: `value.policies[0].subjects[0]: "a.>.b": '>' must be the last token`},
		{name: "rule bad principal", v: map[string]any{"stat_prefix": "x", "policies": []any{rule("principals", []any{"frontend"})}}, want: `value.policies[0].principals[0]: "frontend" is not "any", a spiffe:// ID, a CIDR or an IP address`},
		{name: "rule bad cidr", v: map[string]any{"stat_prefix": "x", "policies": []any{rule("principals", []any{"10.0.0.0/33"})}}, want: `value.policies[0].principals[0]: "10.0.0.0/33" is not a CIDR`},
		{name: "rule spiffe star inside", v: map[string]any{"stat_prefix": "x", "policies": []any{rule("principals", []any{"spiffe://m/*/a"})}}, want: "'*' is allowed only at the end"},
		{name: "rule not an object", v: map[string]any{"stat_prefix": "x", "policies": []any{"deny"}}, want: "value.policies[0]: want an object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(typed(t, tc.v))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := Parse(&xdstypev3.TypedStruct{TypeUrl: "type.googleapis.com/trellis.other"}); err == nil || !strings.Contains(err.Error(), "type_url") {
		t.Fatalf("wrong type_url: %v", err)
	}
}

func TestDecide(t *testing.T) {
	cfg, err := Parse(typed(t, map[string]any{"stat_prefix": "x", "default_action": "DENY", "policies": []any{
		map[string]any{"action": "DENY", "operations": []any{"subscribe"}, "subjects": []any{"orders.secret"}},
		map[string]any{"action": "ALLOW", "operations": []any{"publish"}, "subjects": []any{"orders.*"}, "principals": []any{"spiffe://mesh/producer"}},
		map[string]any{"action": "ALLOW", "operations": []any{"subscribe"}, "subjects": []any{"orders.>"}, "principals": []any{"10.1.0.0/16"}},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	producer := &peer{addr: netip.MustParseAddr("10.2.0.1"), spiffe: "spiffe://mesh/producer"}
	consumer := &peer{addr: netip.MustParseAddr("10.1.3.4")}
	tests := []struct {
		name    string
		publish bool
		subject string
		p       *peer
		want    Action
	}{
		{"producer publishes", true, "orders.new", producer, Allow},
		{"producer publishes outside the pattern", true, "orders.eu.new", producer, Deny},
		{"consumer may not publish", true, "orders.new", consumer, Deny},
		{"consumer subscribes to a wildcard", false, "orders.eu.*", consumer, Allow},
		{"a wildcard covering the denied subject is denied", false, "orders.*", consumer, Deny},
		{"a subscription overlapping a denied subject is denied", false, "orders.>", consumer, Deny},
		{"producer may not subscribe", false, "orders.new", producer, Deny},
	}
	for _, tc := range tests {
		if got := cfg.decide(tc.publish, []byte(tc.subject), tc.p); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
