package ui_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/internal/ui"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// TestServesAssets serves the embedded page over a real socket: the page,
// its modules with a JavaScript type (browsers refuse modules otherwise),
// and the headers that keep it self-contained.
func TestServesAssets(t *testing.T) {
	srv := httptest.NewServer(http.StripPrefix("/ui", ui.Handler()))
	t.Cleanup(srv.Close)
	resp, body := get(t, srv.URL+"/ui/")
	if resp.StatusCode != 200 || !strings.Contains(body, `<script type="module" src="app.js">`) {
		t.Fatalf("/ui/: %s\n%s", resp.Status, body)
	}
	for hdr, want := range map[string]string{
		"Content-Security-Policy": "script-src 'self'",
		"X-Content-Type-Options":  "nosniff",
		"Content-Type":            "text/html",
	} {
		if got := resp.Header.Get(hdr); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want it to contain %q", hdr, got, want)
		}
	}
	for file, ctype := range map[string]string{"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"} {
		resp, _ := get(t, srv.URL+"/ui/"+file)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Errorf("%s: %s, Content-Type %q; want 200 and %s", file, resp.Status, resp.Header.Get("Content-Type"), ctype)
		}
	}
	if resp, _ := get(t, srv.URL+"/ui/nothing.js"); resp.StatusCode != 404 {
		t.Errorf("a missing file: %s, want 404", resp.Status)
	}
}

var (
	importRE = regexp.MustCompile(`(?m)^\s*import\s[^'"]*['"]([^'"]+)['"]`)
	refRE    = regexp.MustCompile(`(?:src|href)="([^"#:]+)"`)
	remoteRE = regexp.MustCompile(`(?i)(?:src|href)\s*=\s*["']?(?:https?:)?//|@import\s+url\(\s*["']?(?:https?:)?//|from\s+['"](?:https?:)?//`)
)

// TestAssetsSelfContained reads the embedded files: every module an ES
// module imports and every file the page references is embedded, and
// nothing is loaded from another host (the dashboard works offline).
func TestAssetsSelfContained(t *testing.T) {
	files := os.DirFS("assets")
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(files, name)
		if err != nil {
			return err
		}
		src := string(data)
		if m := remoteRE.FindString(src); m != "" {
			t.Errorf("%s loads from another host: %q", name, m)
		}
		var refs [][]string
		switch path.Ext(name) {
		case ".js":
			refs = importRE.FindAllStringSubmatch(src, -1)
		case ".html":
			refs = refRE.FindAllStringSubmatch(src, -1)
		}
		for _, m := range refs {
			target := path.Join(path.Dir(name), m[1])
			if _, err := fs.Stat(files, target); err != nil {
				t.Errorf("%s refers to %s, which is not embedded: %v", name, m[1], err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
