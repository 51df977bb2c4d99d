package spiffe

import (
	"strings"
	"testing"
)

func TestID(t *testing.T) {
	id, err := ID("default.trellis.local", "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	if got := id.String(); got != "spiffe://default.trellis.local/default/web" {
		t.Fatalf("ID = %s", got)
	}
	w, err := Parse(id.String())
	if err != nil {
		t.Fatal(err)
	}
	if w.TrustDomain.Name() != "default.trellis.local" || w.Mesh != "default" || w.Service != "web" {
		t.Fatalf("Parse = %+v", w)
	}
	back, err := w.ID()
	if err != nil || back != id {
		t.Fatalf("Workload.ID = %v, %v", back, err)
	}
}

func TestIDRejects(t *testing.T) {
	tests := []struct{ name, td, mesh, service, want string }{
		{"empty trust domain", "", "m", "s", "spiffe id: trust domain: must not be empty"},
		{"uppercase trust domain", "Mesh.local", "m", "s", `spiffe id: trust domain "Mesh.local": trust domain characters`},
		{"trust domain as URI", "spiffe://td", "m", "s", "must be a bare name"},
		{"empty mesh", "td", "", "s", "spiffe id: mesh: must not be empty"},
		{"mesh with slash", "td", "a/b", "s", `spiffe id: mesh "a/b": path segment characters`},
		{"dot service", "td", "m", "..", `spiffe id: service "..": path cannot contain dot segments`},
		{"empty service", "td", "m", "", "spiffe id: service: must not be empty"},
		{"service with space", "td", "m", "a b", `spiffe id: service "a b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ID(tc.td, tc.mesh, tc.service)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ id, want string }{
		{"spiffe://td", "path: want /<mesh>/<service>, got none"},
		{"spiffe://td/m", "service: missing"},
		{"spiffe://td/ns/x/sa/y", "path: 4 segments"},
		{"https://td/m/s", "scheme is missing or invalid"},
		{"spiffe://td/m//s", "empty segments"},
		{"", "cannot be empty"},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			_, err := Parse(tc.id)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
