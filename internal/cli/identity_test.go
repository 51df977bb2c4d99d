package cli_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// Volatile values of the identity commands: tokens, their 128-bit ids,
// bundle versions and RFC 3339 times, replaced by placeholders of the same
// width so tables stay aligned.
var (
	jwsRE     = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)
	tokenIDRE = regexp.MustCompile(`\b[0-9a-f]{32}\b`)
	versionRE = regexp.MustCompile(`\b[0-9a-f]{16}\b`)
	rfc3339RE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
)

func normaliseIdentity(s string) string {
	s = jwsRE.ReplaceAllString(s, "TOKEN")
	s = tokenIDRE.ReplaceAllString(s, "<token-id"+strings.Repeat("-", 22)+">")
	s = versionRE.ReplaceAllString(s, "<bundle-version>")
	return rfc3339RE.ReplaceAllString(s, "YYYY-MM-DDThh:mm:ssZ")
}

func TestIdentityCommandsGolden(t *testing.T) {
	server := controlPlane(t)
	out, _, code := trellis(t, server, "token", "create", "--service", "web", "-o", "json")
	if code != 0 {
		t.Fatalf("token create: exit %d", code)
	}
	var web struct{ ID, Token string }
	if err := json.Unmarshal([]byte(out), &web); err != nil || web.ID == "" || strings.Count(web.Token, ".") != 2 {
		t.Fatalf("token create -o json: %v: %s", err, out)
	}
	golden(t, "token-create-json", "$ trellis token create --service web -o json\n"+normaliseIdentity(out))

	steps := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"token-create-text", []string{"token", "create", "--mesh", "default", "--service", "api", "--ttl", "720h"}, 0},
		{"token-list", []string{"token", "list"}, 0},
		{"token-revoke", []string{"token", "revoke", web.ID}, 0},
		{"token-list-json", []string{"token", "list", "--mesh", "default", "-o", "json"}, 0},
		{"ca-status", []string{"ca", "status"}, 0},
		{"ca-rotate", []string{"ca", "rotate"}, 0},
		{"ca-rotate-abort", []string{"ca", "rotate", "--abort"}, 0},
		{"ca-status-unknown-mesh", []string{"ca", "status", "--mesh", "nosuch"}, 1},
		{"token-create-bad-service", []string{"token", "create", "--service", "a/b"}, 1},
	}
	for _, st := range steps {
		out, errOut, code := trellis(t, server, st.args...)
		if code != st.wantCode {
			t.Fatalf("trellis %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(st.args, " "), code, st.wantCode, out, errOut)
		}
		golden(t, st.name, normaliseIdentity("$ trellis "+strings.Join(st.args, " ")+"\n"+out+"-- stderr --\n"+errOut))
	}
}
