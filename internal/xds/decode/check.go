package decode

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// Check walks m and reports every populated field that the proxy does not
// implement, with its path below path. Any fields are unpacked and walked
// as their contained type. It reports all violations at once, sorted.
func Check(m proto.Message, path string) error {
	var errs []string
	walk(m.ProtoReflect(), path, &errs)
	if len(errs) == 0 {
		return nil
	}
	sort.Strings(errs)
	return errors.New(strings.Join(errs, "\n"))
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func walk(m protoreflect.Message, path string, errs *[]string) {
	name := m.Descriptor().FullName()
	if leafTypes[name] {
		return
	}
	if name == "google.protobuf.Any" {
		walkAny(m, path, errs)
		return
	}
	fields, ok := supported[name]
	if !ok {
		*errs = append(*errs, fmt.Sprintf("%s: %s not supported", orRoot(path), name))
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		fname := string(fd.Name())
		fpath := join(path, fname)
		if !fields.has(fname) {
			*errs = append(*errs, fpath+": not supported")
			return true
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walk(l.Get(i).Message(), fmt.Sprintf("%s[%d]", fpath, i), errs)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				walk(mv.Message(), fmt.Sprintf("%s[%q]", fpath, k.String()), errs)
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			walk(v.Message(), fpath, errs)
		}
		return true
	})
}

func orRoot(path string) string {
	if path == "" {
		return "(document)"
	}
	return path
}

func walkAny(m protoreflect.Message, path string, errs *[]string) {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		// A dynamic Any; resolve through the registry below.
		a = &anypb.Any{}
		proto.Merge(a, m.Interface())
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		*errs = append(*errs, fmt.Sprintf("%s: type %q not supported", orRoot(path), a.GetTypeUrl()))
		return
	}
	walk(inner.ProtoReflect(), path, errs)
}

// fieldSet is a small set of field names.
type fieldSet map[string]struct{}

func (s fieldSet) has(name string) bool { _, ok := s[name]; return ok }

func set(names ...string) fieldSet {
	s := make(fieldSet, len(names))
	for _, n := range names {
		s[n] = struct{}{}
	}
	return s
}

// leafTypes are messages accepted whole wherever a supported field holds them.
var leafTypes = map[protoreflect.FullName]bool{
	"google.protobuf.Duration":    true,
	"google.protobuf.Timestamp":   true,
	"google.protobuf.BoolValue":   true,
	"google.protobuf.UInt32Value": true,
	"google.protobuf.UInt64Value": true,
	"google.protobuf.Int32Value":  true,
	"google.protobuf.Int64Value":  true,
	"google.protobuf.DoubleValue": true,
	"google.protobuf.StringValue": true,
	"google.protobuf.Struct":      true,
	"google.protobuf.Empty":       true,
}
