package cli_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/trellis-mesh/trellis/internal/cli"
	"github.com/trellis-mesh/trellis/internal/cli/render"
	"github.com/trellis-mesh/trellis/internal/control/client"
)

// checkPlane is controlPlane that also returns the xDS address, for the
// raw ADS streams that stand in for proxies.
func checkPlane(t *testing.T) (api, xds string) {
	t.Helper()
	api, xds = startPlane(t, "check-test").Addrs()
	return "http://" + api, xds
}

// rawProxy opens an ADS stream as node id (a stored Dataplane's
// namespace/name), asks for every cluster and listener and ACKs each
// response, or NACKs every listener response when nack is set. The
// stream ends at cleanup.
func rawProxy(t *testing.T, xds, id, nack string) {
	t.Helper()
	cc, err := grpc.NewClient(xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		cc.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; cc.Close() })
	node := &corev3.Node{Id: id, Cluster: "default"}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ListenerType}); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(done)
		acked := map[string]string{}
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			req := &discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce(), VersionInfo: resp.GetVersionInfo()}
			if nack != "" && resp.GetTypeUrl() == resource.ListenerType {
				req.VersionInfo = acked[resp.GetTypeUrl()]
				req.ErrorDetail = &statuspb.Status{Code: 3, Message: nack}
			} else {
				acked[resp.GetTypeUrl()] = resp.GetVersionInfo()
			}
			if stream.Send(req) != nil {
				return
			}
		}
	}()
}

// waitCheck polls `trellis check -o json` until cond holds of its report
// and the mesh's CA, made in the background once a Mesh with mutual TLS
// is applied, exists.
func waitCheck(t *testing.T, server, what string, cond func(render.CheckReport) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _, _ := trellis(t, server, "check", "-o", "json")
		var rep render.CheckReport
		if err := json.Unmarshal([]byte(out), &rep); err == nil && cond(rep) && caMade(rep) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last report:\n%s", what, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// caMade reports whether no identity check still waits for a CA.
func caMade(rep render.CheckReport) bool {
	for _, c := range rep.Checks {
		if strings.Contains(c.Message, "no CA yet") {
			return false
		}
	}
	return true
}

func status(rep render.CheckReport, name string) render.CheckStatus {
	for _, c := range rep.Checks {
		if c.Name == name {
			return c.Status
		}
	}
	return ""
}

// Volatile parts of check output.
var (
	checkPortRE  = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	checkRevRE   = regexp.MustCompile(`revision \d+ read in \d+\.\dms`)
	checkSkewRE  = regexp.MustCompile(`clock is \d+s (ahead of|behind)`)
	checkDaysRE  = regexp.MustCompile(`valid for \d+d, until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	checkXDSVers = regexp.MustCompile(`version [0-9a-f]{6,}`)
)

func normaliseCheck(s string) string {
	s = checkPortRE.ReplaceAllString(s, "127.0.0.1:PORT")
	s = checkRevRE.ReplaceAllString(s, "revision REV read in LATENCY")
	s = checkSkewRE.ReplaceAllString(s, "clock is SKEW")
	s = checkDaysRE.ReplaceAllString(s, "valid for DAYS, until TIME")
	return checkXDSVers.ReplaceAllString(s, "version VERSION")
}

func TestCheckGolden(t *testing.T) {
	server, xds := checkPlane(t)
	examples := filepath.Join("..", "..", "examples", "mesh")
	dataplanes := filepath.Join(examples, "dataplanes")
	run := func(name string, wantCode int, args ...string) string {
		t.Helper()
		args = append([]string{"check"}, args...)
		out, errOut, code := trellis(t, server, args...)
		if code != wantCode {
			t.Fatalf("trellis %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		golden(t, name, "$ trellis "+strings.Join(args, " ")+"\n"+normaliseCheck(out)+"-- stderr --\n"+errOut)
		return out
	}
	apply := func(args ...string) {
		t.Helper()
		if out, errOut, code := trellis(t, server, append([]string{"apply"}, args...)...); code != 0 {
			t.Fatalf("apply %v: exit %d\n%s%s", args, code, out, errOut)
		}
	}

	// All ok: the example mesh with web-1's proxy connected and in sync.
	apply("-f", examples+"/", "-f", filepath.Join(dataplanes, "web-1.yaml"))
	rawProxy(t, xds, "default/web-1", "")
	waitCheck(t, server, "web-1 ready and in sync", func(r render.CheckReport) bool {
		return r.OK && status(r, "every Dataplane connected and Ready") == render.CheckOK &&
			status(r, "every Dataplane on the latest configuration") == render.CheckOK
	})
	run("check-ok", 0)

	// A route with a backend no Service stands for.
	route := filepath.Join(t.TempDir(), "route.yaml")
	os.WriteFile(route, []byte(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api-typo}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 80}]
  rules:
  - backendRefs: [{name: api-v3, port: 80}]
`), 0o644)
	apply("-f", route)
	inSync := func(what string) {
		t.Helper()
		waitCheck(t, server, what, func(r render.CheckReport) bool {
			return status(r, "every Dataplane on the latest configuration") == render.CheckOK
		})
	}
	inSync("web-1 to acknowledge the new route")
	run("check-unresolved-backend", 1)
	if _, _, code := trellis(t, server, "delete", "httproute", "api-typo"); code != 0 {
		t.Fatal("delete api-typo failed")
	}

	// A Dataplane whose proxy never connected.
	apply("-f", filepath.Join(dataplanes, "api-1.yaml"))
	inSync("web-1 to acknowledge its configuration with api-1")
	run("check-not-ready", 1)

	// api-1's proxy connects and rejects its listeners.
	rawProxy(t, xds, "default/api-1", "listener 10001: bind: address already in use")
	waitCheck(t, server, "api-1's NACK", func(r render.CheckReport) bool {
		for _, c := range r.Checks {
			if c.Name == "every Dataplane on the latest configuration" && !strings.HasPrefix(c.Message, "1 of 2 behind") {
				return false // web-1 has a push to acknowledge, or api-1's NACK is not in yet
			}
		}
		return status(r, "no NACKs") == render.CheckFailed
	})
	out := run("check-nack-json", 1, "-o", "json")
	var rep render.CheckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.OK {
		t.Errorf("-o json: ok %v, %v", rep.OK, err)
	}
}

func TestCheckUnreachable(t *testing.T) {
	_, _ = checkPlane(t) // for the environment it sets
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := "http://" + ln.Addr().String()
	ln.Close()
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), []string{"check", "--server", server, "--token", token}, &out, &errOut)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out.String(), errOut.String())
	}
	// The dial error's wording is the OS's: keep the line's start.
	got := regexp.MustCompile(`(?m)^(\[FAIL\] API reachable: control plane at 127\.0\.0\.1:PORT: ).*$`).
		ReplaceAllString(normaliseCheck(out.String()), "${1}CONNECTION REFUSED")
	golden(t, "check-unreachable", "$ trellis check\n"+got+"-- stderr --\n"+errOut.String())
	if !strings.Contains(out.String(), "--server") {
		t.Errorf("the hint does not say how to set --server:\n%s", out.String())
	}
}

func TestCheckWrongToken(t *testing.T) {
	server, _ := checkPlane(t)
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), []string{"check", "--server", server, "--token", "wrong", "-o", "json"}, &out, &errOut)
	var rep render.CheckReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if code != 1 || rep.OK || status(rep, "API reachable") != render.CheckOK || status(rep, "token accepted") != render.CheckFailed ||
		len(rep.Checks) != 2 || !strings.Contains(rep.Checks[1].Hint, "--token") {
		t.Errorf("wrong token: exit %d, report %+v", code, rep)
	}
}

func TestCheckPre(t *testing.T) {
	checkPlane(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), []string{"check", "--pre", "--api-addr", freeAddr, "--xds-addr", busy.Addr().String(), "-o", "json"}, &out, &errOut)
	var rep render.CheckReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if code != 1 || rep.OK || status(rep, "API port free") != render.CheckOK || status(rep, "xDS port free") != render.CheckFailed {
		t.Errorf("--pre: exit %d, report %+v", code, rep)
	}
}

// The client's config file decides the server, as for other commands.
func TestCheckUsesClientConfig(t *testing.T) {
	server, _ := checkPlane(t)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := client.WriteConfig(cfg, client.Config{Server: server, Token: token}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TRELLIS_CONFIG", cfg)
	var out, errOut bytes.Buffer
	if code := cli.Main(context.Background(), []string{"check"}, &out, &errOut); code != 0 {
		t.Errorf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
}

// A rotation begun with a CA that expires in ten days: both identity
// checks warn (the rotation is in AddNew), and warnings alone exit 0.
func TestCheckCAWarnings(t *testing.T) {
	server, _ := checkPlane(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "short-lived test root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10*24*time.Hour + time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	// A token makes the mesh's CA; the given one then begins a rotation.
	if out, errOut, code := trellis(t, server, "token", "create", "--service", "web"); code != 0 {
		t.Fatalf("token create: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := trellis(t, server, "ca", "rotate", "--cert", certFile, "--key", keyFile); code != 0 {
		t.Fatalf("ca rotate: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code := trellis(t, server, "check")
	if code != 0 {
		t.Fatalf("exit %d, want 0 (warnings only)\n%s%s", code, out, errOut)
	}
	golden(t, "check-ca-warnings", normaliseIdentity("$ trellis check\n"+normaliseCheck(out)+"-- stderr --\n"+errOut))
}
