package cli_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/cli"
	"github.com/trellis-mesh/trellis/internal/control"
	"github.com/trellis-mesh/trellis/internal/store/bolt"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const token = "cli-test-token"

// controlPlane runs an in-process control plane on 127.0.0.1:0 over a
// fresh bbolt store, stopped at cleanup, and returns its API URL. The
// caller's environment and home directory are hidden from the CLI.
func controlPlane(t *testing.T) string {
	t.Helper()
	api, _ := startPlane(t, "cli-test").Addrs()
	return "http://" + api
}

// startPlane runs the control plane named name for controlPlane and
// checkPlane.
func startPlane(t *testing.T, name string) *control.Control {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	for _, k := range []string{"TRELLIS_CONFIG", "TRELLIS_SERVER", "TRELLIS_TOKEN", "TRELLIS_CA_FILE"} {
		t.Setenv(k, "")
	}
	s, err := bolt.Open(filepath.Join(t.TempDir(), "trellis.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := control.New(control.Options{Store: s, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", Token: token, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("control plane: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("control plane did not stop")
		}
	})
	select {
	case <-c.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("control plane not ready")
	}
	return c
}

// trellis runs the command line against server and returns its output and
// exit code.
func trellis(t *testing.T, server string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append(args, "--server", server, "--token", token)
	code = cli.Main(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// Volatile values, replaced before comparing with the golden files: the
// uid the control plane assigns, resourceVersion (the replica's heartbeat
// writes to the store too, at times of its own), times
// (creationTimestamp, lastTransitionTime), and the AGE column (which must
// be seconds: everything was created by this test).
var (
	uidRE  = regexp.MustCompile(`("?uid"?: )"?[0-9a-f-]{36}"?`)
	rvRE   = regexp.MustCompile(`("?resourceVersion"?: )"\d+"`)
	timeRE = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"`)
	ageRE  = regexp.MustCompile(`(?m)\b\d+s$`)
)

func normalise(s string) string {
	s = uidRE.ReplaceAllString(s, `${1}"UID"`)
	s = rvRE.ReplaceAllString(s, `${1}"RV"`)
	s = timeRE.ReplaceAllString(s, `"TIME"`)
	return ageRE.ReplaceAllString(s, "AGE")
}

// golden compares got with testdata/name.golden (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func TestCommandsGolden(t *testing.T) {
	server := controlPlane(t)
	examples := filepath.Join("..", "..", "examples", "mesh")
	steps := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"apply", []string{"apply", "-f", examples + "/"}, 0},
		{"apply-again-json", []string{"apply", "-f", examples + "/", "-o", "json"}, 0},
		{"describe-no-proxies-json", []string{"describe", "service", "web", "-o", "json"}, 0},
		{"apply-dataplanes", []string{"apply", "-f", filepath.Join(examples, "dataplanes")}, 0},
		{"get-svc", []string{"get", "svc"}, 0},
		{"get-dp", []string{"get", "dp"}, 0},
		{"get-httproute", []string{"get", "httproute"}, 0},
		{"get-tp", []string{"get", "tp"}, 0},
		{"get-mesh", []string{"get", "mesh"}, 0},
		{"get-svc-api-yaml", []string{"get", "svc", "api", "-o", "yaml"}, 0},
		{"get-svc-json", []string{"get", "svc", "-o", "json"}, 0},
		{"describe-service-api", []string{"describe", "service", "api"}, 0},
		{"describe-httproute-json", []string{"describe", "httproute", "api-canary", "-o", "json"}, 0},
		{"get-unknown-kind", []string{"get", "gizmo"}, 1},
		{"get-missing", []string{"get", "svc", "nope"}, 1},
		{"delete", []string{"delete", "httproute", "api-canary"}, 0},
		{"get-httproute-none", []string{"get", "httproute"}, 0},
	}
	for _, st := range steps {
		out, errOut, code := trellis(t, server, st.args...)
		if code != st.wantCode {
			t.Fatalf("trellis %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(st.args, " "), code, st.wantCode, out, errOut)
		}
		golden(t, st.name, "$ trellis "+strings.Join(st.args, " ")+"\n"+normalise(out)+"-- stderr --\n"+errOut)
	}
}

func TestApplyRefused(t *testing.T) {
	server := controlPlane(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80, protocol: http}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs: [{group: "", kind: Service, name: api}]
  rules:
  - backendRefs:
    - {name: api, port: 80, weight: 90}
    - {name: api, port: 80, weight: -1}
`), 0o644)
	out, errOut, code := trellis(t, server, "apply", "-f", bad)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	golden(t, "apply-refused", "stdout:\n"+out+"stderr:\n"+errOut)
	// Nothing was written.
	out, errOut, code = trellis(t, server, "get", "svc")
	if code != 0 || out != "" || errOut != "no svc found\n" {
		t.Errorf("after a refused apply: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	server := controlPlane(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apply"}, "-f FILE|DIR|- is required"},
		{[]string{"apply", "-f", "x.yaml", "-o", "yaml"}, `-o "yaml": want name, json`},
		{[]string{"apply", "-f", "does-not-exist.yaml"}, "does-not-exist.yaml"},
		{[]string{"get", "svc", "-o", "wide"}, `-o "wide": want table, yaml, json`},
		{[]string{"describe", "svc"}, "accepts 2 arg(s)"},
	} {
		_, errOut, code := trellis(t, server, tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("trellis %s: exit %d, stderr %q, want it to contain %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
	// A wrong token is refused with a hint.
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), []string{"get", "svc", "--server", server, "--token", "wrong"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "token") {
		t.Errorf("wrong token: exit %d, stderr %q", code, errOut.String())
	}
}
