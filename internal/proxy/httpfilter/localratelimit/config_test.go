package localratelimit

import (
	"strings"
	"testing"

	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{name: "stage", yaml: `{stage: 11}`, want: "stage: 11 is above 10"},
		{name: "descriptor bucket", yaml: `{descriptors: [{entries: [{key: k, value: v}]}]}`, want: "descriptors[0].token_bucket: required"},
		{name: "descriptor entry", yaml: `{descriptors: [{entries: [{value: v}], token_bucket: {max_tokens: 1, fill_interval: 1s}}]}`, want: "descriptors[0].entries[0].key: required"},
		{name: "own rate_limits", yaml: `{rate_limits: [{actions: [{generic_key: {}}]}]}`, want: "rate_limits[0].actions[0].generic_key.descriptor_value: required"},
		{name: "status", yaml: `{status: {code: 200}}`, want: "status.code: 200 is not an error status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pb := &lrlv3.LocalRateLimit{}
			if err := decode.Unmarshal([]byte(tc.yaml), pb); err != nil {
				t.Fatal(err)
			}
			a, _ := anypb.New(pb)
			_, err := Builder{}.Build("rl", a)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseDescriptorsWithoutDefaultBucket(t *testing.T) {
	pb := &lrlv3.LocalRateLimit{}
	if err := decode.Unmarshal([]byte(`{descriptors: [{entries: [{key: k, value: v}], token_bucket: {max_tokens: 1, fill_interval: 1s}}], local_rate_limit_per_downstream_connection: true}`), pb); err != nil {
		t.Fatal(err)
	}
	a, _ := anypb.New(pb)
	c, err := parse(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.limiter == nil || c.limiter.Default != nil || !c.limiter.HasDescriptors() || c.perConn == nil {
		t.Fatalf("limiter %+v, per connection %v", c.limiter, c.perConn != nil)
	}
}
