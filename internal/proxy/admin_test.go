package proxy_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

func TestAdmin(t *testing.T) {
	e := startEcho(t, "e")
	ca := certs.NewCA(t, "ca")
	leaf := ca.Issue(t, certs.LeafOptions{CommonName: "x"})
	p := startProxy(t, `
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  secrets:
  - name: inline
    tls_certificate: {certificate_chain: {inline_string: "{{.Cert}}"}, private_key: {inline_string: "{{.Key}}"}}
  clusters:
  - name: web
    load_assignment:
      cluster_name: web
      endpoints:
      - locality: {region: eu, zone: a}
        lb_endpoints: [{endpoint: {address: {{addr .Echo}}}, load_balancing_weight: 3}]
`, map[string]string{"Echo": e.Addr(), "Cert": strings.ReplaceAll(string(leaf.CertPEM), "\n", "\\n"), "Key": strings.ReplaceAll(string(leaf.KeyPEM), "\n", "\\n")})
	admin := "http://" + p.AdminAddr()

	t.Run("ready and health check fail/ok", func(t *testing.T) {
		check := func(wantCode int, want string) {
			t.Helper()
			resp, err := http.Get(admin + "/ready")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != wantCode || strings.TrimSpace(string(b)) != want {
				t.Fatalf("/ready = %d %q, want %d %q", resp.StatusCode, b, wantCode, want)
			}
		}
		check(200, "LIVE")
		if resp, err := http.Post(admin+"/healthcheck/fail", "", nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("fail: %v %v", resp, err)
		}
		check(503, "DRAINING")
		if resp, err := http.Get(admin + "/healthcheck/ok"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET on a mutating endpoint: %v %v", resp, err)
		}
		http.Post(admin+"/healthcheck/ok", "", nil)
		check(200, "LIVE")
	})
	t.Run("clusters", func(t *testing.T) {
		resp, err := http.Get(admin + "/clusters")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{"web::" + e.Addr() + "::weight::3", "web::" + e.Addr() + "::locality::eu/a/", "web::" + e.Addr() + "::health_flags::healthy"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/clusters lacks %q:\n%s", want, b)
			}
		}
		resp, err = http.Get(admin + "/clusters?format=json")
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Statuses []struct {
				Name  string `json:"name"`
				Hosts []struct {
					Address string `json:"address"`
				} `json:"host_statuses"`
			} `json:"cluster_statuses"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || len(doc.Statuses) != 1 || doc.Statuses[0].Hosts[0].Address != e.Addr() {
			t.Fatalf("json: %+v %v", doc, err)
		}
	})
	t.Run("config dump redacts inline keys", func(t *testing.T) {
		resp, err := http.Get(admin + "/config_dump")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s := string(b)
		var dump struct {
			Configs []struct {
				Type      string `json:"@type"`
				Bootstrap struct {
					StaticResources struct {
						Clusters []struct {
							Name string `json:"name"`
						} `json:"clusters"`
					} `json:"static_resources"`
				} `json:"bootstrap"`
			} `json:"configs"`
		}
		if err := json.Unmarshal(b, &dump); err != nil || len(dump.Configs) != 1 ||
			dump.Configs[0].Type != "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump" ||
			dump.Configs[0].Bootstrap.StaticResources.Clusters[0].Name != "web" {
			t.Fatalf("config dump (%v):\n%s", err, s)
		}
		if strings.Contains(s, "PRIVATE KEY") || !strings.Contains(s, "CERTIFICATE") {
			t.Fatal("config dump leaks the inline private key or lost the certificate")
		}
	})
}

// TestPipelining sends several HTTP/1.1 requests at once on one connection
// and reads the answers in order.
func TestPipelining(t *testing.T) {
	base, _ := routingSetup(t)
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var req strings.Builder
	for _, p := range []string{"/one", "/two", "/health", "/three"} {
		req.WriteString("GET " + p + " HTTP/1.1\r\nHost: app.local\r\n\r\n")
	}
	if _, err := io.WriteString(c, req.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []string{`"path":"/one"`, `"path":"/two"`, "fine", `"path":"/three"`} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Fatalf("got %q, want %q", b, want)
		}
	}
}

// TestDNSClusters resolves "localhost" for STRICT_DNS and LOGICAL_DNS
// clusters and rewrites the Host to the endpoint's name.
func TestDNSClusters(t *testing.T) {
	e := startEcho(t, "dns")
	_, port, _ := net.SplitHostPort(e.Addr())
	for _, typ := range []string{"STRICT_DNS", "LOGICAL_DNS"} {
		t.Run(typ, func(t *testing.T) {
			p := startProxy(t, `
`+webListener+`          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: named, auto_host_rewrite: true}}]}]}
          `+routerFilter+`
  clusters:
  - name: named
    type: {{.Type}}
    dns_lookup_family: V4_ONLY
    load_assignment: {cluster_name: named, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: localhost, port_value: {{.Port}}}}}}]}]}
`, map[string]string{"Type": typ, "Port": port})
			_, er, body := get(t, http.DefaultClient, "http://"+p.ListenerAddrs()["web"]+"/", nil)
			if er.Name != "dns" || er.Host != "localhost" {
				t.Fatalf("name %q host %q: %s", er.Name, er.Host, body)
			}
		})
	}
}
