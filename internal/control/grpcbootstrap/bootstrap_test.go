package grpcbootstrap

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json")

// TestGenerate compares with golden files (go test -update rewrites them).
// That grpc-go accepts the output is proven by the xdsserver proxyless test,
// which configures grpc-go's xds resolver with it.
func TestGenerate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"defaults", Options{Service: "echo"}},
		{"full", Options{
			ServerURI: "control.example:17071", Service: "reviews", Mesh: "shop", NodeID: "shop/reviews-7f9c",
			Region: "eu", Zone: "eu-1a", Metadata: map[string]any{"version": "v2"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Generate(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Generate() =\n%s\nwant (%s)\n%s", got, golden, want)
			}
		})
	}
}

func TestGenerateErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no service", Options{}, "service: required"},
		{"bad uri", Options{Service: "echo", ServerURI: "control"}, `server uri "control": want host:port`},
		{"reserved metadata", Options{Service: "echo", Metadata: map[string]any{MetadataProxyless: false}}, `metadata "trellis.dev/proxyless": set by Trellis`},
		{"unencodable metadata", Options{Service: "echo", Metadata: map[string]any{"f": func() {}}}, "metadata: json: unsupported type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Generate(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
