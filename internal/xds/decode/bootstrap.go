package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// LoadBootstrap reads and decodes the bootstrap file at path. See Bootstrap.
func LoadBootstrap(path string) (*bootstrapv3.Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, err := Bootstrap(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// Bootstrap decodes an Envoy v3 Bootstrap from YAML or JSON, validates it and
// checks that it uses only supported fields. The error lists every problem
// found, each prefixed with its field path.
func Bootstrap(data []byte) (*bootstrapv3.Bootstrap, error) {
	b := &bootstrapv3.Bootstrap{}
	if err := Unmarshal(data, b); err != nil {
		return nil, err
	}
	if err := Validate(b, ""); err != nil {
		return nil, err
	}
	return b, nil
}

// Unmarshal decodes YAML or JSON into m with Envoy's field names. Unknown
// fields and unresolvable Any types are errors naming the field path.
func Unmarshal(data []byte, m proto.Message) error {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fmt.Errorf("yaml: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		js = []byte("{}")
	}
	err = protojson.UnmarshalOptions{}.Unmarshal(js, m)
	if err != nil {
		return locate(js, err)
	}
	return nil
}

// Validate runs the protoc-gen-validate rules of m and the supported-field
// check. path prefixes every reported field ("" for a top-level document).
func Validate(m proto.Message, path string) error {
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return cleanPGV(err, path)
		}
	}
	return Check(m, path)
}

func prefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

// pgvError is the shape of protoc-gen-validate's field errors.
type pgvError interface {
	Field() string
	Reason() string
	Cause() error
}

// cleanPGV turns protoc-gen-validate's nested "embedded message failed
// validation" chains into one line per violation with a field path, e.g.
// "static_resources.clusters[0].connect_timeout: value must be greater than 0s".
func cleanPGV(err error, path string) error {
	var lines []string
	var walk func(e error, path string)
	walk = func(e error, path string) {
		if multi, ok := e.(interface{ AllErrors() []error }); ok {
			for _, x := range multi.AllErrors() {
				walk(x, path)
			}
			return
		}
		pe, ok := e.(pgvError)
		if !ok {
			lines = append(lines, prefix(path)+e.Error())
			return
		}
		p := join(path, snake(pe.Field()))
		if c := pe.Cause(); c != nil {
			walk(c, p)
			return
		}
		lines = append(lines, p+": "+pe.Reason())
	}
	walk(err, path)
	return errors.New(strings.Join(lines, "\n"))
}

// snake converts a Go field name with an optional index ("Clusters[0]") to
// the proto name ("clusters[0]").
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r == '[' {
			b.WriteString(s[i:])
			break
		}
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

var unresolvedRE = regexp.MustCompile(`unable to resolve "([^"]+)"`)

var posRE = regexp.MustCompile(`\(line (\d+):(\d+)\)`)

// locate rewrites a protojson error so that it names the JSON path at the
// position the error reports, instead of a line and column of the generated
// JSON that the user never saw.
func locate(js []byte, err error) error {
	// protobuf-go deliberately varies the space after "proto:" (U+00A0)
	// so nobody matches on its messages; normalise before rewriting.
	msg := strings.ReplaceAll(err.Error(), "\u00a0", " ")
	msg = strings.TrimPrefix(msg, "proto: ")
	m := posRE.FindStringSubmatch(msg)
	if m == nil {
		return errors.New(msg)
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	off := offsetOf(js, line, col)
	detail := strings.TrimSpace(strings.Replace(msg, m[0], "", 1))
	detail = strings.TrimPrefix(detail, "syntax error ")
	detail = strings.TrimSpace(strings.TrimPrefix(detail, ":"))
	if m := unresolvedRE.FindStringSubmatch(detail); m != nil {
		detail = fmt.Sprintf("type %q not supported", m[1])
	}
	if p := pathAt(js, off); p != "" {
		return fmt.Errorf("%s: %s", p, detail)
	}
	return errors.New(detail)
}

func offsetOf(js []byte, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(js[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
	}
	return off + col - 1
}

// pathAt returns the field path (a.b[2].c) of the JSON value at byte offset
// off, by tokenizing js up to that point.
func pathAt(js []byte, off int) string {
	type frame struct {
		key     string
		index   int
		isArray bool
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	var stack []frame
	expectKey := false
	lastPath := ""
	render := func() string {
		var sb strings.Builder
		for _, f := range stack {
			if f.isArray {
				fmt.Fprintf(&sb, "[%d]", f.index)
				continue
			}
			if f.key == "" {
				continue
			}
			if sb.Len() > 0 {
				sb.WriteByte('.')
			}
			sb.WriteString(f.key)
		}
		return sb.String()
	}
	for {
		if int(dec.InputOffset()) > off {
			return lastPath
		}
		tok, err := dec.Token()
		if err != nil {
			return lastPath
		}
		// A value (or the start of one) completes an array element or an
		// object member.
		afterValue := func() {
			if len(stack) == 0 {
				return
			}
			top := &stack[len(stack)-1]
			if top.isArray {
				top.index++
			} else {
				expectKey = true
			}
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{})
				expectKey = true
			case '[':
				stack = append(stack, frame{isArray: true})
			case '}', ']':
				stack = stack[:len(stack)-1]
				afterValue()
			}
		case string:
			if expectKey && len(stack) > 0 && !stack[len(stack)-1].isArray {
				stack[len(stack)-1].key = t
				expectKey = false
				lastPath = render()
				continue
			}
			afterValue()
		default:
			afterValue()
		}
		if len(stack) > 0 && stack[len(stack)-1].isArray {
			lastPath = render()
		}
	}
}
