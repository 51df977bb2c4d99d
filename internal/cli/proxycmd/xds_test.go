package proxycmd

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestXDSFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{name: "bootstrap only", args: []string{"-c", "b.yaml"}},
		{name: "dataplane", args: []string{"--control-plane", "127.0.0.1:7071", "--dataplane", "dp.yaml"}},
		{name: "static node", args: []string{"--control-plane", "cp:7071", "--node-id", "ns/a", "--mesh", "m", "-c", "b.yaml"}},
		{name: "nothing", args: nil, err: "--config-path (-c) or --control-plane is required"},
		{name: "no identity", args: []string{"--control-plane", "cp:7071"}, err: "needs --dataplane FILE or --node-id ID"},
		{name: "both identities", args: []string{"--control-plane", "cp:7071", "--dataplane", "d", "--node-id", "a"}, err: "exclude each other"},
		{name: "mesh with dataplane", args: []string{"--control-plane", "cp:7071", "--dataplane", "d", "--mesh", "m"}, err: "--mesh goes with --node-id"},
		{name: "bad address", args: []string{"--control-plane", "cp", "--node-id", "a"}, err: `--control-plane "cp": want HOST:PORT`},
		{name: "dataplane without control plane", args: []string{"-c", "b.yaml", "--dataplane", "d"}, err: "--dataplane needs --control-plane"},
		{name: "token file", args: []string{"--control-plane", "cp:1", "--node-id", "a", "--token-file", "t"}},
		{name: "token file without control plane", args: []string{"-c", "b.yaml", "--token-file", "t"}, err: "--token-file needs --control-plane"},
		{name: "validate", args: []string{"--control-plane", "cp:1", "--node-id", "a", "--validate"}, err: "--validate"},
		{name: "bad admin", args: []string{"--control-plane", "cp:1", "--node-id", "a", "--admin-address", "x"}, err: "--admin-address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &Options{}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			o.Bind(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := o.Check()
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Check = %v, want %q", err, tc.err)
			}
		})
	}
}

// TestBadDataplaneFile: a Dataplane without a name stops the proxy before
// it starts, naming the file and the field.
func TestBadDataplaneFile(t *testing.T) {
	dp := filepath.Join(t.TempDir(), "dp.yaml")
	if err := os.WriteFile(dp, []byte("kind: Dataplane\nmetadata: {namespace: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := Main(context.Background(), []string{"--control-plane", "127.0.0.1:1", "--dataplane", dp, "--admin-address", "127.0.0.1:0"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), dp+": metadata.name: required") {
		t.Errorf("exit %d, stderr %q; want 1 and the file and field", code, errOut.String())
	}
}

// TestTokenFileErrors: a token file that is missing, empty, unreadable or
// not a token stops the proxy before it serves, naming the flag (or the
// environment variable) and the file.
func TestTokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	junk := filepath.Join(dir, "junk")
	for p, data := range map[string]string{empty: "\n", junk: "not a token"} {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name, flag, env, want string
	}{
		{name: "missing", flag: missing, want: "--token-file: token file " + missing + ": no such file or directory"},
		{name: "empty", flag: empty, want: "--token-file: token file " + empty + ": empty"},
		{name: "not a token", flag: junk, want: "--token-file: token file " + junk + ": token: 1 dot-separated parts"},
		{name: "directory", flag: dir, want: "--token-file: token file " + dir + ": is a directory"},
		{name: "from the environment", env: missing, want: "TRELLIS_TOKEN_FILE: token file " + missing + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(TokenFileEnv, tc.env)
			args := []string{"--control-plane", "127.0.0.1:1", "--node-id", "a", "--admin-address", "127.0.0.1:0"}
			if tc.flag != "" {
				args = append(args, "--token-file", tc.flag)
			}
			var out, errOut bytes.Buffer
			code := Main(context.Background(), args, &out, &errOut)
			if code != 1 || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, errOut.String(), tc.want)
			}
		})
	}
}

// TestLeanProxyDependencies: the sidecar binary links the xDS client but
// nothing of the control plane or Kubernetes (DESIGN.md: the sidecar's
// footprint).
func TestLeanProxyDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "../../../cmd/trellis-proxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := string(out)
	if !strings.Contains(deps, "github.com/trellis-mesh/trellis/internal/xds/ads\n") {
		t.Error("trellis-proxy does not link the ADS client")
	}
	for _, bad := range []string{"github.com/trellis-mesh/trellis/internal/control", "github.com/trellis-mesh/trellis/api/",
		"k8s.io/apimachinery", "k8s.io/client-go", "sigs.k8s.io/gateway-api", "go.etcd.io/", "github.com/spf13/cobra", "envoyproxy/go-control-plane/pkg/server"} {
		if strings.Contains(deps, bad) {
			t.Errorf("trellis-proxy links %s", bad)
		}
	}
}
