package proxycmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestControlPlaneCAErrors: a control-plane CA file that is missing or
// holds no certificate stops the proxy before it serves, naming the flag
// (or the environment variable) and the file; the flag needs
// --control-plane.
func TestControlPlaneCAErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.crt")
	if err := os.WriteFile(junk, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.crt")
	for _, tc := range []struct {
		name, flag, env, want string
	}{
		{name: "missing", flag: missing, want: "--control-plane-ca " + missing + ": open " + missing + ": no such file or directory"},
		{name: "not PEM", flag: junk, want: "--control-plane-ca " + junk + ": ads: control-plane CA: no PEM certificate in it"},
		{name: "from the environment", env: junk, want: ControlPlaneCAEnv + " " + junk + ": ads: control-plane CA: no PEM certificate in it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(ControlPlaneCAEnv, tc.env)
			args := []string{"--control-plane", "127.0.0.1:1", "--node-id", "a", "--admin-address", "127.0.0.1:0"}
			if tc.flag != "" {
				args = append(args, "--control-plane-ca", tc.flag)
			}
			var out, errOut bytes.Buffer
			if code := Main(context.Background(), args, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, errOut.String(), tc.want)
			}
		})
	}
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"-c", "b.yaml", "--control-plane-ca", junk}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "--control-plane-ca needs --control-plane") {
		t.Errorf("without --control-plane: exit %d, stderr %q", code, errOut.String())
	}
}
