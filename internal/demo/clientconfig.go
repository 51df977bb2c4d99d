package demo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/trellis-mesh/trellis/internal/control/client"
)

// cliConfig is what the demo does with the client config file the CLI
// reads by default (client.LoadConfig: $TRELLIS_CONFIG, else
// ~/.trellis/config.yaml), so that `trellis get` in another terminal
// reaches the demo's control plane with no flags. The rule is to never
// change a file the user had:
//
//   - no file there: the demo writes one (mode 0600) and removes it when it
//     stops, if it still holds what the demo wrote;
//   - a file pointing at the demo's own API address (left by an earlier
//     `trellis control` on the default port): the demo's control plane
//     serves with that file's token, so the file is right for both;
//   - a file pointing elsewhere, or one the demo cannot read: left alone;
//     the tour says to export TRELLIS_CONFIG naming the demo's own config.
type cliConfig struct {
	path    string // where the CLI looks
	token   string // a token to serve with, from a file that already pointed at the demo
	other   string // why the file is left alone; "" when the CLI will find the demo
	wrote   []byte // what the demo wrote to path; nil when it wrote nothing
	madeDir string // the directory the demo created for path, if any
}

// defaultClientConfig is the file the CLI reads its config from, by the
// rule of client.LoadConfig: $TRELLIS_CONFIG, else config.yaml in
// ~/.trellis.
func defaultClientConfig() string {
	if p := os.Getenv("TRELLIS_CONFIG"); p != "" {
		return p
	}
	return filepath.Join(client.DefaultDataDir(), client.ConfigFile)
}

// planClientConfig looks at the file at path before the demo's control
// plane starts on apiURL.
func planClientConfig(path, apiURL string) *cliConfig {
	c := &cliConfig{path: path}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return c
	case err != nil:
		c.other = err.Error()
		return c
	}
	var cfg client.Config
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		c.other = fmt.Sprintf("it does not parse: %v", err)
		return c
	}
	if sameServer(cfg.Server, apiURL) && cfg.Token != "" {
		c.token = cfg.Token
		return c
	}
	c.other = fmt.Sprintf("it points at %s", cfg.Server)
	return c
}

// sameServer reports whether two API addresses (with or without scheme
// and trailing slash) are the same.
func sameServer(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimSuffix(strings.TrimPrefix(s, "http://"), "/")
		return strings.Replace(s, "localhost:", "127.0.0.1:", 1)
	}
	return norm(a) == norm(b)
}

// install writes cfg to the file if there was none. It never replaces a
// file: one created since planClientConfig looked is left alone.
func (c *cliConfig) install(cfg client.Config) error {
	if c.other != "" || c.token != "" {
		return nil
	}
	dir := filepath.Dir(c.path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("client config: %w", err)
		}
		c.madeDir = dir
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		c.other = "it appeared while the demo started"
		return nil
	}
	if err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(c.path)
		return fmt.Errorf("client config %s: %w", c.path, err)
	}
	c.wrote = data
	return nil
}

// restore removes what install wrote, unless someone changed the file
// since, and the directory install made, if it is empty.
func (c *cliConfig) restore() error {
	var err error
	if c.wrote != nil {
		if data, rerr := os.ReadFile(c.path); rerr == nil && bytes.Equal(data, c.wrote) {
			err = os.Remove(c.path)
		}
		c.wrote = nil
	}
	if c.madeDir != "" {
		os.Remove(c.madeDir) // fails, as it should, when something else is in it
		c.madeDir = ""
	}
	return err
}

// describe says, for the tour, how the CLI finds the demo; own is the
// demo's own client config.
func (c *cliConfig) describe(own string) string {
	switch {
	case c.other != "":
		return fmt.Sprintf("%s is left as it is (%s). Point the CLI at the demo first:\n  export TRELLIS_CONFIG=%s", c.path, c.other, own)
	case c.token != "":
		return fmt.Sprintf("The CLI needs no flags: %s already points at this address, and the demo accepts its token.", c.path)
	default:
		return fmt.Sprintf("The CLI needs no flags: the demo wrote %s and removes it when it stops.", c.path)
	}
}
