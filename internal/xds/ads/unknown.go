package ads

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// checkUnknown reports fields of m (and of every message and Any inside
// it) that this build's Envoy API does not know: a control plane built
// against a newer API sent them, and the proxy must not silently ignore
// them (decode.Check only sees known fields).
func checkUnknown(m proto.Message) error {
	var errs []string
	unknownWalk(m.ProtoReflect(), "", &errs)
	if len(errs) == 0 {
		return nil
	}
	sort.Strings(errs)
	return errors.New(strings.Join(errs, "\n"))
}

func unknownWalk(m protoreflect.Message, path string, errs *[]string) {
	if raw := m.GetUnknown(); len(raw) > 0 {
		for len(raw) > 0 {
			num, _, n := protowire.ConsumeField(raw)
			if n < 0 {
				break
			}
			msg := fmt.Sprintf("field number %d unknown to this proxy (a newer Envoy API?)", num)
			if path != "" {
				msg = path + ": " + msg
			}
			*errs = append(*errs, msg)
			raw = raw[n:]
		}
	}
	if a, ok := m.Interface().(*anypb.Any); ok {
		if inner, err := a.UnmarshalNew(); err == nil {
			unknownWalk(inner.ProtoReflect(), path, errs)
		}
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		fpath := string(fd.Name())
		if path != "" {
			fpath = path + "." + fpath
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				unknownWalk(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", fpath, i), errs)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				unknownWalk(mv.Message(), fmt.Sprintf("%s[%q]", fpath, k.String()), errs)
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			unknownWalk(v.Message(), fpath, errs)
		}
		return true
	})
}
