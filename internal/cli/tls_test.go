package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestControlTLSFlags: bad TLS flags of `trellis control` are refused
// before anything starts, naming the flag.
func TestControlTLSFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls", "maybe"}, `--tls "maybe": want auto, on or off`},
		{[]string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls", "off", "--tls-san", "cp.example.com"}, "do not go with --tls off"},
	} {
		var out, errOut bytes.Buffer
		args := append([]string{"control", "--data-dir", dir, "--api-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0"}, tc.args...)
		if code := Main(context.Background(), args, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}
