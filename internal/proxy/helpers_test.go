package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/trellis-mesh/trellis/internal/echo"
	"github.com/trellis-mesh/trellis/internal/proxy"
	"github.com/trellis-mesh/trellis/internal/xds/decode"
)

// startEcho starts a real echo workload on 127.0.0.1:0.
func startEcho(t testing.TB, name string, opts ...func(*echo.Options)) *echo.Server {
	t.Helper()
	o := echo.Options{Name: name, HTTPAddr: "127.0.0.1:0"}
	for _, f := range opts {
		f(&o)
	}
	s, err := echo.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// render executes a bootstrap template. Templates can use {{hostport
// "127.0.0.1:1234"}} to get "{address: ..., port_value: ...}".
func render(t testing.TB, tmpl string, data any) []byte {
	t.Helper()
	tp, err := template.New("b").Funcs(template.FuncMap{
		"addr": func(hp string) string {
			i := strings.LastIndexByte(hp, ':')
			return "{socket_address: {address: \"" + hp[:i] + "\", port_value: " + hp[i+1:] + "}}"
		},
	}).Parse(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tp.Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// startProxy applies the rendered bootstrap to a new in-process proxy.
func startProxy(t testing.TB, tmpl string, data any) *proxy.Proxy {
	t.Helper()
	b, err := decode.Bootstrap(render(t, tmpl, data))
	if err != nil {
		t.Fatal(err)
	}
	p := proxy.New(proxy.Options{Logger: slog.New(slog.DiscardHandler), DrainTimeout: 5 * time.Second})
	if err := p.Apply(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	return p
}

func apply(t testing.TB, p *proxy.Proxy, tmpl string, data any) error {
	t.Helper()
	b, err := decode.Bootstrap(render(t, tmpl, data))
	if err != nil {
		return err
	}
	return p.Apply(b)
}

// echoReply is the JSON an echo server answers with by default.
type echoReply struct {
	Name    string              `json:"name"`
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   map[string][]string `json:"query"`
	Host    string              `json:"host"`
	Proto   string              `json:"proto"`
	Headers map[string][]string `json:"headers"`
	TLS     bool                `json:"tls"`
}

// get sends a request and decodes an echo reply when the status is 2xx.
func get(t testing.TB, c *http.Client, url string, hdr map[string]string) (*http.Response, echoReply, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var er echoReply
	if resp.StatusCode/100 == 2 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &er); err != nil {
			t.Fatalf("decode echo reply: %v: %s", err, body)
		}
	}
	return resp, er, string(body)
}

const routerFilter = `http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]`

// scrape returns the proxy's Prometheus text exposition.
func scrape(t testing.TB, adminAddr string) string {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func dialTCP(addr string) (*net.TCPConn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// webListener starts a bootstrap with one listener "web" on 127.0.0.1:0
// whose HTTP connection manager has stat_prefix "web"; tests continue it
// with the connection manager's other fields.
const webListener = `static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
`
