package translator

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"

	"github.com/trellis-mesh/trellis/internal/control/xdsserver"
)

// TestGoldenAcceptedByXDSServer hands every golden case's output to the
// xDS server, whose consistency check (routes, load assignments, Secrets)
// must accept it as the control plane pushes it.
func TestGoldenAcceptedByXDSServer(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	srv := xdsserver.New(xdsserver.Options{})
	for _, file := range files {
		ar, err := txtar.ParseFile(file)
		if err != nil {
			t.Fatal(err)
		}
		sections := map[string][]byte{}
		for _, f := range ar.Files {
			sections[f.Name] = f.Data
		}
		if sections["error"] != nil {
			continue
		}
		objs := decodeObjects(t, sections["resources.yaml"])
		res, err := Translate(NewIndex(objs, testBundles), proxyFor(t, sections["proxy.yaml"], objs))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		id := strings.TrimSuffix(filepath.Base(file), ".txtar")
		if _, err := srv.SetResources(id, xdsserver.Resources{Listeners: res.Listeners, Routes: res.Routes,
			Clusters: res.Clusters, Endpoints: res.Endpoints, Secrets: res.Secrets}); err != nil {
			t.Errorf("%s: the xDS server refuses the output: %v", file, err)
		}
	}
}

// TestNoBundleFailsClosed: without a trust bundle, an mTLS sidecar's
// configuration names a Secret it does not carry, and is refused whole.
func TestNoBundleFailsClosed(t *testing.T) {
	ar, err := txtar.ParseFile("testdata/mtls-strict.txtar")
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeObjects(t, ar.Files[1].Data)
	none := WithTrustBundles(func(string) ([]byte, string, bool) { return nil, "", false })
	idx := NewIndex(objs, none)
	if _, ok := idx.TrustBundleVersion("default"); ok {
		t.Error("TrustBundleVersion reports a bundle the source does not have")
	}
	res, err := Translate(idx, proxyFor(t, ar.Files[0].Data, objs))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Secrets) != 0 || !res.ReadsTrustBundle("default") {
		t.Fatalf("secrets %v, reads bundle %v", res.Secrets, res.ReadsTrustBundle("default"))
	}
	if err := res.Consistent(); err == nil || !strings.Contains(err.Error(), `secret "trellis-trust-bundle" missing`) {
		t.Errorf("Consistent() = %v, want a missing trust bundle", err)
	}
	_, err = xdsserver.New(xdsserver.Options{}).SetResources("n", xdsserver.Resources{Listeners: res.Listeners, Routes: res.Routes,
		Clusters: res.Clusters, Endpoints: res.Endpoints, Secrets: res.Secrets})
	if err == nil {
		t.Error("the xDS server accepts an mTLS configuration without its trust bundle")
	}
	// The bundle arrives: a new Index carries it, with its version.
	idx = idx.Update(objs, nil)
	if _, ok := idx.TrustBundleVersion("default"); ok {
		t.Error("Update invented a bundle")
	}
	idx = NewIndex(objs, testBundles).Update(objs, nil)
	if v, ok := idx.TrustBundleVersion("default"); !ok || v != "v1-default" {
		t.Errorf("TrustBundleVersion after Update = %q, %v", v, ok)
	}
}
