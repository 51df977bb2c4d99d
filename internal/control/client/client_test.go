package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/control/client"
	"github.com/trellis-mesh/trellis/internal/control/manager"
	"github.com/trellis-mesh/trellis/internal/control/server"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
)

// env isolates the test from the caller's environment and home directory.
func env(t *testing.T, vars map[string]string) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, k := range []string{"TRELLIS_CONFIG", "TRELLIS_SERVER", "TRELLIS_TOKEN", "TRELLIS_CA_FILE"} {
		t.Setenv(k, vars[k])
	}
	return home
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cfg.yaml")
	if err := client.WriteConfig(file, client.Config{Server: "http://file:1", Token: "file-token"}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file mode: %v %v, want 0600", fi.Mode(), err)
	}
	// An older, readable file gets the token only once it is private.
	old := filepath.Join(dir, "old.yaml")
	os.WriteFile(old, []byte("server: http://old\n"), 0o644)
	if err := client.WriteConfig(old, client.Config{Server: "http://new", Token: "t"}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(old); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("rewritten config file mode: %v %v, want 0600", fi.Mode(), err)
	}
	if err := client.WriteConfig(filepath.Join(dir, "no", "such", "dir.yaml"), client.Config{}); err == nil {
		t.Error("WriteConfig into a missing directory: no error")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("files left in the config directory: %v", entries)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("server: http://x\ntokn: typo\n"), 0o600)

	for _, tc := range []struct {
		name    string
		vars    map[string]string
		home    *client.Config // written to ~/.trellis/config.yaml
		want    client.Config
		wantErr string
	}{
		{name: "nothing", want: client.Config{Server: client.DefaultServer}},
		{name: "default file", home: &client.Config{Server: "http://home:2", Token: "home-token"},
			want: client.Config{Server: "http://home:2", Token: "home-token"}},
		{name: "TRELLIS_CONFIG beats the default file", vars: map[string]string{"TRELLIS_CONFIG": file},
			home: &client.Config{Server: "http://home:2", Token: "home-token"},
			want: client.Config{Server: "http://file:1", Token: "file-token"}},
		{name: "env beats the file", vars: map[string]string{"TRELLIS_CONFIG": file, "TRELLIS_SERVER": "http://env:3", "TRELLIS_TOKEN": "env-token"},
			want: client.Config{Server: "http://env:3", Token: "env-token"}},
		{name: "env token only", vars: map[string]string{"TRELLIS_CONFIG": file, "TRELLIS_TOKEN": "env-token"},
			want: client.Config{Server: "http://file:1", Token: "env-token"}},
		{name: "env without a file", vars: map[string]string{"TRELLIS_SERVER": "http://env:3"},
			want: client.Config{Server: "http://env:3"}},
		{name: "explicit missing file", vars: map[string]string{"TRELLIS_CONFIG": filepath.Join(dir, "missing.yaml")},
			wantErr: "missing.yaml"},
		{name: "unknown field", vars: map[string]string{"TRELLIS_CONFIG": bad}, wantErr: "tokn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := env(t, tc.vars)
			if tc.home != nil {
				os.MkdirAll(filepath.Join(home, ".trellis"), 0o700)
				if err := client.WriteConfig(filepath.Join(home, ".trellis", client.ConfigFile), *tc.home); err != nil {
					t.Fatal(err)
				}
			}
			got, err := client.LoadConfig()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNew(t *testing.T) {
	for _, s := range []string{"127.0.0.1:7070", "http://127.0.0.1:7070", "https://cp.example:443/prefix"} {
		if _, err := client.New(client.Config{Server: s}); err != nil {
			t.Errorf("New(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "http://", "::bad"} {
		if _, err := client.New(client.Config{Server: s}); err == nil {
			t.Errorf("New(%q): no error", s)
		}
	}
}

// start serves the API over a fresh bbolt store and returns a client of it
// and its URL.
func start(t *testing.T) (*client.Client, string) {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Options{Manager: manager.New(s), Token: "tok"}))
	t.Cleanup(func() { srv.Close(); s.Close() })
	c, err := client.New(client.Config{Server: srv.URL, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	return c, srv.URL
}

func TestClientRoundTrip(t *testing.T) {
	c, _ := start(t)
	ctx := context.Background()
	res, err := c.Apply(ctx, strings.NewReader(`apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{port: 80}]
`))
	if err != nil || len(res) != 1 || res[0].Action != manager.Created {
		t.Fatalf("apply: %+v %v", res, err)
	}
	items, err := c.List(ctx, "svc", "shop")
	if err != nil || len(items) != 1 {
		t.Fatalf("list: %d %v", len(items), err)
	}
	if raw, err := c.Get(ctx, "service", "shop", "api"); err != nil || !strings.Contains(string(raw), `"name":"api"`) {
		t.Fatalf("get: %s %v", raw, err)
	}
	if d, err := c.Describe(ctx, "services", "shop", "api"); err != nil || len(d.Object) == 0 || d.Proxies == nil {
		t.Fatalf("describe: %+v %v", d, err)
	}
	if _, err := c.Delete(ctx, "svc", "shop", "api"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(ctx, "svc", "shop", "api")
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("get after delete: %v, want a 404 APIError", err)
	}
}

func TestAPIErrorText(t *testing.T) {
	c, url := start(t)
	_, err := c.Apply(context.Background(), strings.NewReader(`apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: ok}
spec:
  selector: {app: ok}
  ports: [{port: 80}]
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: bad, namespace: shop}
spec:
  selector: {app: bad}
  ports: [{name: a, port: 0}, {name: b, port: 99999}]
`))
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity {
		t.Fatalf("apply: %v, want a 422 APIError", err)
	}
	want := "refused, nothing changed:\n" +
		"document 2 (Service shop/bad)\n" +
		"  spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive\n" +
		"  spec.ports[1].port: Invalid value: 99999: must be between 1 and 65535, inclusive"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("error text (-want +got):\n%s", diff)
	}

	// Without details, the server's message; a wrong token says so.
	bad, _ := client.New(client.Config{Server: strings.TrimPrefix(url, "http://"), Token: "wrong"})
	_, err = bad.List(context.Background(), "svc", "")
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), "token") {
		t.Fatalf("list with a wrong token: %v", err)
	}
}
