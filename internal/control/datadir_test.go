package control

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/internal/control/client"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
)

// newInDir makes (but does not run) a control plane with its data in dir.
func newInDir(t *testing.T, dir, token string) *Control {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := New(Options{Store: s, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", DataDir: dir, Token: token})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.apiLn.Close(); c.xdsLn.Close() })
	return c
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestDataDirFirstStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "trellis")
	c := newInDir(t, dir, "")
	tok := c.Token()
	if len(tok) != 64 {
		t.Fatalf("token %q: want 32 random bytes in hex", tok)
	}
	data, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil || strings.TrimSpace(string(data)) != tok {
		t.Fatalf("%s: %q %v, want the token", TokenFile, data, err)
	}
	for _, f := range []string{TokenFile, client.ConfigFile} {
		if m := mode(t, filepath.Join(dir, f)); m != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, m)
		}
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("data dir mode %v, want 0700", m)
	}
	// The CLI finds the server and token there.
	t.Setenv("TRELLIS_CONFIG", filepath.Join(dir, client.ConfigFile))
	t.Setenv("TRELLIS_SERVER", "")
	t.Setenv("TRELLIS_TOKEN", "")
	cfg, err := client.LoadConfig()
	api, _ := c.Addrs()
	if err != nil || cfg.Token != tok || cfg.Server != "http://"+api {
		t.Errorf("client config %+v %v, want %s with the token", cfg, err, api)
	}

	// A second start keeps the token.
	if again := newInDir(t, dir, ""); again.Token() != tok {
		t.Errorf("second start: token %q, want %q kept", again.Token(), tok)
	}
}

func TestDataDirExplicitToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "absent")
	c := newInDir(t, dir, "given")
	if c.Token() != "given" {
		t.Errorf("token %q, want the given one", c.Token())
	}
	t.Setenv("TRELLIS_CONFIG", filepath.Join(dir, client.ConfigFile))
	t.Setenv("TRELLIS_SERVER", "")
	t.Setenv("TRELLIS_TOKEN", "")
	if cfg, err := client.LoadConfig(); err != nil || cfg.Token != "given" {
		t.Errorf("client config %+v %v, want the given token", cfg, err)
	}
	if _, err := os.Stat(filepath.Join(dir, TokenFile)); !os.IsNotExist(err) {
		t.Errorf("%s written although a token was given: %v", TokenFile, err)
	}
}

func TestDataDirEmptyToken(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, TokenFile), []byte("\n"), 0o600)
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = New(Options{Store: s, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), TokenFile) {
		t.Fatalf("New with an empty token file: %v, want an error naming it", err)
	}
}
