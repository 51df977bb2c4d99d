package datasource

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "blob")
	if err := os.WriteFile(file, []byte("from file"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	t.Setenv("TRELLIS_DATASOURCE_TEST", "from env")
	t.Setenv("TRELLIS_DATASOURCE_EMPTY", "")

	tests := []struct {
		name    string
		ds      *corev3.DataSource
		want    string
		wantErr string
	}{
		{
			name: "filename",
			ds:   &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: file}},
			want: "from file",
		},
		{
			name:    "missing file",
			ds:      &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: missing}},
			wantErr: `filename "` + missing + `": open ` + missing + `: no such file or directory`,
		},
		{
			name: "inline_bytes",
			ds:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte("bytes")}},
			want: "bytes",
		},
		{
			name: "inline_string",
			ds:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "string"}},
			want: "string",
		},
		{
			name: "environment_variable",
			ds:   &corev3.DataSource{Specifier: &corev3.DataSource_EnvironmentVariable{EnvironmentVariable: "TRELLIS_DATASOURCE_TEST"}},
			want: "from env",
		},
		{
			name:    "environment_variable empty",
			ds:      &corev3.DataSource{Specifier: &corev3.DataSource_EnvironmentVariable{EnvironmentVariable: "TRELLIS_DATASOURCE_EMPTY"}},
			wantErr: `environment_variable "TRELLIS_DATASOURCE_EMPTY": not set or empty`,
		},
		{
			name:    "environment_variable unset",
			ds:      &corev3.DataSource{Specifier: &corev3.DataSource_EnvironmentVariable{EnvironmentVariable: "TRELLIS_DATASOURCE_UNSET_X"}},
			wantErr: `environment_variable "TRELLIS_DATASOURCE_UNSET_X": not set or empty`,
		},
		{
			name:    "nil",
			ds:      nil,
			wantErr: "not set",
		},
		{
			name:    "no specifier",
			ds:      &corev3.DataSource{},
			wantErr: "not set",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Read(tc.ds)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Read() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("Read() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadInlineBytesIsCopied(t *testing.T) {
	in := []byte("abc")
	got, err := Read(&corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: in}})
	if err != nil {
		t.Fatal(err)
	}
	got[0] = 'x'
	if string(in) != "abc" {
		t.Errorf("Read() result aliases inline_bytes: input now %q", in)
	}
}
