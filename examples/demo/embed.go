// Package demo embeds the mesh resources of `trellis demo` (the YAML files
// in this folder), so the demo applies exactly what users read here.
package demo

import (
	"bytes"
	_ "embed"
)

var (
	//go:embed mesh.yaml
	mesh []byte
	//go:embed services.yaml
	services []byte
	//go:embed route.yaml
	route []byte
	//go:embed policy.yaml
	policy []byte
	//go:embed messaging.yaml
	messaging []byte
)

// File is one resource file of the demo.
type File struct {
	Name string // its name in examples/demo
	Data []byte
}

// Files returns the demo's resource files in the order it applies them.
func Files() []File {
	return []File{{"mesh.yaml", mesh}, {"services.yaml", services}, {"messaging.yaml", messaging}, {"route.yaml", route}, {"policy.yaml", policy}}
}

// Resources returns every file of Files as one multi-document YAML stream.
func Resources() []byte {
	var b bytes.Buffer
	for _, f := range Files() {
		b.WriteString("---\n")
		b.Write(f.Data)
	}
	return b.Bytes()
}
