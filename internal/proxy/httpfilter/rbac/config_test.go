package rbac

import (
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func anyOf(t testing.TB, m proto.Message, js string) *anypb.Any {
	t.Helper()
	if err := protojson.Unmarshal([]byte(js), m); err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestBuildErrors(t *testing.T) {
	tests := []struct{ name, cfg, want string }{
		{"rules path", `{"rules":{"policies":{"p":{"permissions":[{"any":true}]}}}}`, `rules.policies["p"].principals: at least one principal is required`},
		{"shadow path", `{"shadow_rules":{"policies":{"p":{"principals":[{"any":true}]}}}}`, `shadow_rules.policies["p"].permissions`},
		{"matcher", `{"matcher":{}}`, `matcher, shadow_matcher: the matcher API is not supported`},
		{"per-rule stats", `{"track_per_rule_stats":true}`, `track_per_rule_stats: not supported`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Builder{}.Build("rbac", anyOf(t, &rbacv3.RBAC{}, tc.cfg))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseOverride(t *testing.T) {
	o, err := Builder{}.ParseOverride(anyOf(t, &rbacv3.RBACPerRoute{}, `{}`))
	if err != nil || !o.(*config).disabled {
		t.Fatalf("RBACPerRoute without rbac: %v, %+v", err, o)
	}
	o, err = Builder{}.ParseOverride(anyOf(t, &rbacv3.RBACPerRoute{}, `{"rbac":{"rules":{"action":"DENY"}}}`))
	if err != nil || o.(*config).disabled || o.(*config).rules == nil {
		t.Fatalf("RBACPerRoute with rbac: %v, %+v", err, o)
	}
	_, err = Builder{}.ParseOverride(anyOf(t, &rbacv3.RBACPerRoute{}, `{"rbac":{"rules":{"policies":{"p":{}}}}}`))
	if err == nil || !strings.Contains(err.Error(), `rbac.rules.policies["p"].permissions`) {
		t.Fatalf("error %v", err)
	}
	_, err = Builder{}.ParseOverride(anyOf(t, &rbacv3.RBAC{}, `{}`))
	if err == nil || !strings.Contains(err.Error(), "RBACPerRoute") {
		t.Fatalf("RBAC as an override: %v", err)
	}
}

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1:80": "10.0.0.1", "10.0.0.1": "10.0.0.1", "[2001:db8::1]:443": "2001:db8::1",
		"2001:db8::1": "2001:db8::1", "::1": "::1", "junk": "invalid IP",
	} {
		if got := parseAddr(in).String(); got != want {
			t.Errorf("parseAddr(%q) = %s, want %s", in, got, want)
		}
	}
}
