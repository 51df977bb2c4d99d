package decode

import (
	"errors"
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// RedactPrivateKeys removes inline private keys (inline_bytes,
// inline_string, environment_variable) from every TlsCertificate in m,
// including those inside Any fields, so m can be shown in a config dump.
// Keys referenced by filename stay: the path is not a secret.
func RedactPrivateKeys(m proto.Message) {
	redactMsg(m.ProtoReflect())
}

func redactMsg(m protoreflect.Message) {
	if tc, ok := m.Interface().(*tlsv3.TlsCertificate); ok {
		if pk := tc.GetPrivateKey(); pk != nil && pk.GetFilename() == "" {
			tc.PrivateKey = nil
		}
		tc.Password = nil
		return
	}
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return
		}
		redactMsg(inner.ProtoReflect())
		if b, err := proto.Marshal(inner); err == nil {
			a.Value = b
		}
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				redactMsg(v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				redactMsg(mv.Message())
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			redactMsg(v.Message())
		}
		return true
	})
}

// PrefixErrors prefixes every error joined in err with path and ".".
func PrefixErrors(path string, err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, PrefixErrors(path, e))
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s.%w", path, err)
}
