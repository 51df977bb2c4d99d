// Package client talks to the control plane's REST API; the CLI and the
// end-to-end tests use it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/trellis-mesh/trellis/internal/control/manager"
	"github.com/trellis-mesh/trellis/internal/control/server"
)

// DefaultServer is the API address of a control plane on this machine.
const DefaultServer = "http://127.0.0.1:7070"

// ConfigFile is the client configuration file's name in the data directory.
const ConfigFile = "config.yaml"

// Config is what the CLI needs to reach a control plane.
type Config struct {
	Server string `json:"server"`
	Token  string `json:"token"`
	// CAFile names a PEM file of the CA certificates an https Server's
	// certificate must chain to (the control plane writes its own CA to
	// ca.crt in its data directory). CA holds the same PEM inline. Neither
	// set: the system's roots.
	CAFile string `json:"caFile,omitempty"`
	CA     string `json:"ca,omitempty"`
}

// DefaultDataDir returns ~/.trellis (or ./.trellis without a home).
func DefaultDataDir() string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".trellis")
	}
	return ".trellis"
}

// LoadConfig finds the client configuration: the file named by
// TRELLIS_CONFIG, else ConfigFile in the default data directory; then
// TRELLIS_SERVER, TRELLIS_TOKEN and TRELLIS_CA_FILE override it. A missing file is not an
// error: the result then points at DefaultServer without a token.
func LoadConfig() (Config, error) {
	c := Config{Server: DefaultServer}
	path := os.Getenv("TRELLIS_CONFIG")
	explicit := path != ""
	if !explicit {
		path = filepath.Join(DefaultDataDir(), ConfigFile)
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := yaml.UnmarshalStrict(data, &c); err != nil {
			return c, fmt.Errorf("client config %s: %w", path, err)
		}
	case !errors.Is(err, os.ErrNotExist) || explicit:
		return c, fmt.Errorf("client config: %w", err)
	}
	if s := os.Getenv("TRELLIS_SERVER"); s != "" {
		c.Server = s
	}
	if t := os.Getenv("TRELLIS_TOKEN"); t != "" {
		c.Token = t
	}
	if f := os.Getenv("TRELLIS_CA_FILE"); f != "" {
		c.CAFile, c.CA = f, ""
	}
	return c, nil
}

// WriteConfig writes c to path with mode 0600, replacing the file (and
// its mode, should an older one be readable by others) atomically.
func WriteConfig(path string, c Config) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*") // mode 0600
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("client config %s: %w", path, err)
	}
	return nil
}

// Client is a REST client of one control plane.
type Client struct {
	base   *url.URL
	token  string
	http   *http.Client
	caFrom string // where the CA came from, for errors
}

// New returns a client of the API at server ("http://host:port" or
// "host:port").
func New(c Config) (*Client, error) {
	s := c.Server
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("server %q: not a URL like http://127.0.0.1:7070", c.Server)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	if c.CAFile != "" || c.CA != "" {
		if u.Scheme != "https" {
			return nil, fmt.Errorf("server %q: a CA (caFile, ca, --ca-file, TRELLIS_CA_FILE) goes with an https:// server", c.Server)
		}
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		hc.Transport = tr
	}
	return &Client{base: u, token: c.Token, http: hc, caFrom: c.caSource()}, nil
}

// APIError is a non-2xx answer.
type APIError struct {
	Status int
	server.ErrorResponse
}

func (e *APIError) Error() string {
	if len(e.Details) == 0 {
		return e.ErrorResponse.Error
	}
	return (&manager.InvalidError{Documents: e.Details}).Error()
}

// Apply sends a stream of documents.
func (c *Client) Apply(ctx context.Context, docs io.Reader) ([]manager.Result, error) {
	var resp server.ApplyResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/apply", nil, docs, &resp)
	return resp.Results, err
}

// List returns the documents of kind as JSON.
func (c *Client) List(ctx context.Context, kind, namespace string) ([]json.RawMessage, error) {
	var resp server.ListResponse
	err := c.do(ctx, http.MethodGet, "/api/v1/"+url.PathEscape(kind), ns(namespace), nil, &resp)
	return resp.Items, err
}

// Get returns one document as JSON.
func (c *Client) Get(ctx context.Context, kind, namespace, name string) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodGet, "/api/v1/"+url.PathEscape(kind)+"/"+url.PathEscape(name), ns(namespace), nil, &raw)
	return raw, err
}

// Describe returns one document with what it references and affects.
func (c *Client) Describe(ctx context.Context, kind, namespace, name string) (server.Describe, error) {
	var d server.Describe
	err := c.do(ctx, http.MethodGet, "/api/v1/"+url.PathEscape(kind)+"/"+url.PathEscape(name)+"/describe", ns(namespace), nil, &d)
	return d, err
}

// Delete removes one object and returns it as it was.
func (c *Client) Delete(ctx context.Context, kind, namespace, name string) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodDelete, "/api/v1/"+url.PathEscape(kind)+"/"+url.PathEscape(name), ns(namespace), nil, &raw)
	return raw, err
}

func ns(namespace string) url.Values {
	if namespace == "" {
		return nil
	}
	return url.Values{"namespace": {namespace}}
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, out any) error {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/yaml")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.connError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("control plane at %s: %w", c.base.Host, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, &e.ErrorResponse) != nil || e.ErrorResponse.Error == "" {
			e.ErrorResponse.Error = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(data))
		}
		return e
	}
	return json.Unmarshal(data, out)
}
