package bridgefilter

import (
	"strings"
	"testing"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/telemetry/metrics"
)

func typedStruct(t *testing.T, typeURL string, v map[string]any) *xdstypev3.TypedStruct {
	t.Helper()
	s, err := structpb.NewStruct(v)
	if err != nil {
		t.Fatal(err)
	}
	return &xdstypev3.TypedStruct{TypeUrl: typeURL, Value: s}
}

func valid() map[string]any {
	return map[string]any{
		"source":  "spiffe://td/default/orders",
		"brokers": []any{map[string]any{"name": "k", "type": "kafka", "addresses": []any{"127.0.0.1:1"}}},
		"subscriptions": []any{map[string]any{"name": "default/s", "broker": "k", "topic": "t", "consumer_group": "g",
			"url": "http://127.0.0.1:8080/e", "concurrency": 2.0, "backoff_base": "10ms", "backoff_max": "1s"}},
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(map[string]any)
		url  string
		want string
	}{
		{"valid", func(map[string]any) {}, "", ""},
		{"type url", func(map[string]any) {}, "type.googleapis.com/x", `type_url: "type.googleapis.com/x" is not`},
		{"unknown field", func(v map[string]any) { v["extra"] = true }, "", `value: json: unknown field "extra"`},
		{"duration", func(v map[string]any) { v["subscriptions"].([]any)[0].(map[string]any)["backoff_max"] = "soon" },
			"", `value.subscriptions[0].backoff_max: "soon" is not a positive duration`},
		{"broker", func(v map[string]any) { v["subscriptions"].([]any)[0].(map[string]any)["broker"] = "n" },
			"", `value.subscriptions[0].broker: no broker "n"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := valid()
			tc.mut(v)
			url := TypeURL
			if tc.url != "" {
				url = tc.url
			}
			cfg, err := Parse(typedStruct(t, url, v))
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			case tc.want == "" && (cfg.Subscriptions[0].Concurrency != 2 || cfg.Subscriptions[0].BackoffMax.String() != "1s" || cfg.Source != "spiffe://td/default/orders"):
				t.Fatalf("parsed %+v", cfg)
			}
		})
	}
}

// TestRuntimePerRegistry: builds on one proxy registry share one runtime
// (consumers outlive reloads); another proxy gets its own.
func TestRuntimePerRegistry(t *testing.T) {
	reg := metrics.New()
	b := Builder{Metrics: reg}
	a, err := anypb.New(typedStruct(t, TypeURL, valid()))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := b.Build("bridge", a); err != nil {
			t.Fatal(err)
		}
	}
	rt := b.Runtime()
	t.Cleanup(func() { rt.Close() })
	if rt != (Builder{Metrics: reg}).Runtime() {
		t.Fatal("a second builder on the same registry made another runtime")
	}
	if rt.Subscriptions() != 1 {
		t.Fatalf("%d subscriptions, want 1", rt.Subscriptions())
	}
	other := Builder{Metrics: metrics.New()}.Runtime()
	t.Cleanup(func() { other.Close() })
	if other == rt {
		t.Fatal("two registries share a runtime")
	}
}
