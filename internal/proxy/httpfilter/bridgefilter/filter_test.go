package bridgefilter

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/bridge"
	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
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

// TestPending: a build records its bridge configuration without starting
// anything; the same configuration twice is one bridge, another one is
// refused naming both filters; without Pending the filter is checked only
// and answers 503.
func TestPending(t *testing.T) {
	rt := bridge.New(bridge.Options{})
	t.Cleanup(func() { rt.Close() })
	pending := NewPending(rt)
	b := Builder{Pending: pending}
	if got := pending.Config(); len(got.Brokers)+len(got.Subscriptions) != 0 {
		t.Fatalf("empty Pending has %+v", got)
	}
	a, err := anypb.New(typedStruct(t, TypeURL, valid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"one", "two"} {
		if _, err := b.Build(name, a); err != nil {
			t.Fatal(err)
		}
	}
	if rt.Subscriptions() != 0 {
		t.Fatal("Build started subscriptions; only the proxy's Update may")
	}
	if got := pending.Config(); len(got.Subscriptions) != 1 || got.Subscriptions[0].Name != "default/s" {
		t.Fatalf("collected %+v", got)
	}
	other := valid()
	other["source"] = "spiffe://td/default/other"
	oa, err := anypb.New(typedStruct(t, TypeURL, other))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build("three", oa); err == nil || !strings.Contains(err.Error(), `filter "three" carries another configuration than filter "two"`) {
		t.Fatalf("a second configuration: %v", err)
	}
	f, err := Builder{}.Build("check", a)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := &httpfilter.Request{W: rec, R: httptest.NewRequest(http.MethodPost, "/publish/k/t", nil)}
	if err := f.Wrap(nil).Serve(req); err != nil || rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("without a runtime: %v %d", err, rec.Code)
	}
}
