package proxy_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/trellis-mesh/trellis/internal/testutil/certs"
)

// BenchmarkSidecarPair sends requests through two proxies joined by HTTP/2
// over mutual TLS (the mesh hop) to a real echo upstream.
func BenchmarkSidecarPair(b *testing.B) {
	ca := certs.NewCA(b, "mesh-ca")
	srv := ca.Issue(b, certs.LeafOptions{CommonName: "b", URIs: []string{"spiffe://mesh.test/b"}})
	cli := ca.Issue(b, certs.LeafOptions{CommonName: "a", URIs: []string{"spiffe://mesh.test/a"}})
	e := startEcho(b, "app")
	d := tlsData{CA: ca.File(), Cert: srv.CertFile, Key: srv.KeyFile, ClientCert: cli.CertFile, ClientKey: cli.KeyFile,
		Echo: e.Addr(), ServerSAN: "spiffe://mesh.test/b", ClientSAN: "spiffe://mesh.test/a"}
	pb := startProxy(b, sidecarB, d)
	d.Upstream = pb.ListenerAddrs()["inbound"]
	pa := startProxy(b, sidecarA, d)
	url := "http://" + pa.ListenerAddrs()["outbound"] + "/?size=1024"
	c := &http.Client{}
	defer c.CloseIdleConnections()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkSingleHop is the same through one proxy.
func BenchmarkSingleHop(b *testing.B) {
	e := startEcho(b, "app")
	p := startProxy(b, lbConfig, lbData{Policy: "ROUND_ROBIN", Addrs: []string{e.Addr()}, Weights: []int{1}, Standby: e.Addr()})
	url := "http://" + p.ListenerAddrs()["web"] + "/?size=1024"
	c := &http.Client{}
	defer c.CloseIdleConnections()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
