package demo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/internal/control/client"
)

const demoAPI = "http://127.0.0.1:7070"

func TestClientConfigWrittenAndRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".trellis") // not there yet
	path := filepath.Join(dir, "config.yaml")
	cc := planClientConfig(path, demoAPI)
	if cc.token != "" || cc.other != "" {
		t.Fatalf("plan %+v, want to write", cc)
	}
	if err := cc.install(client.Config{Server: demoAPI, Token: "demo"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TRELLIS_CONFIG", path)
	t.Setenv("TRELLIS_SERVER", "")
	t.Setenv("TRELLIS_TOKEN", "")
	got, err := client.LoadConfig()
	if err != nil || got.Server != demoAPI || got.Token != "demo" {
		t.Fatalf("the CLI reads %+v, %v", got, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	if !strings.Contains(cc.describe("/own"), "the demo wrote "+path) {
		t.Errorf("describe: %s", cc.describe("/own"))
	}
	if err := cc.restore(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the directory the demo made is still there: %v", err)
	}
}

func TestClientConfigOfTheSameAddressKeepsItsToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	const before = "server: http://localhost:7070/\ntoken: mine\n"
	os.WriteFile(path, []byte(before), 0o600)
	cc := planClientConfig(path, demoAPI)
	if cc.token != "mine" || cc.other != "" {
		t.Fatalf("plan %+v, want the token reused", cc)
	}
	if err := cc.install(client.Config{Server: demoAPI, Token: "mine"}); err != nil {
		t.Fatal(err)
	}
	if err := cc.restore(); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != before {
		t.Errorf("file now %q", data)
	}
	if !strings.Contains(cc.describe("/own"), "accepts its token") {
		t.Errorf("describe: %s", cc.describe("/own"))
	}
}

func TestClientConfigElsewhereIsLeftAlone(t *testing.T) {
	for _, tc := range []struct{ name, content, why string }{
		{"another server", "server: http://10.0.0.1:7070\ntoken: x\n", "it points at http://10.0.0.1:7070"},
		{"same server, no token", "server: http://127.0.0.1:7070\n", "it points at http://127.0.0.1:7070"},
		{"not a config", "server: [\n", "it does not parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			os.WriteFile(path, []byte(tc.content), 0o600)
			cc := planClientConfig(path, demoAPI)
			if !strings.Contains(cc.other, tc.why) {
				t.Fatalf("plan %+v, want it left alone because %s", cc, tc.why)
			}
			if err := cc.install(client.Config{Server: demoAPI, Token: "demo"}); err != nil {
				t.Fatal(err)
			}
			if err := cc.restore(); err != nil {
				t.Fatal(err)
			}
			if data, _ := os.ReadFile(path); string(data) != tc.content {
				t.Errorf("file now %q", data)
			}
			if d := cc.describe("/tmp/d/config.yaml"); !strings.Contains(d, "export TRELLIS_CONFIG=/tmp/d/config.yaml") {
				t.Errorf("describe: %s", d)
			}
		})
	}
}

func TestClientConfigRaces(t *testing.T) {
	t.Run("appears before install", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "config.yaml")
		cc := planClientConfig(path, demoAPI)
		os.WriteFile(path, []byte("server: http://10.0.0.1:7070\n"), 0o600)
		if err := cc.install(client.Config{Server: demoAPI, Token: "demo"}); err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(path); !strings.Contains(string(data), "10.0.0.1") || cc.other == "" {
			t.Errorf("file %q, plan %+v: want it kept and the user told", data, cc)
		}
	})
	t.Run("changed while the demo ran", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "config.yaml")
		cc := planClientConfig(path, demoAPI)
		if err := cc.install(client.Config{Server: demoAPI, Token: "demo"}); err != nil {
			t.Fatal(err)
		}
		// `trellis control` started meanwhile rewrote it.
		os.WriteFile(path, []byte("server: http://127.0.0.1:7070\ntoken: new\n"), 0o600)
		if err := cc.restore(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("a config the demo did not write was removed: %v", err)
		}
	})
}
