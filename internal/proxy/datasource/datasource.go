package datasource

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Read returns the bytes ds refers to. A nil ds, or one with no specifier
// set, is an error ("not set"). Errors name the specifier that failed, e.g.
// `filename "/x": open /x: no such file or directory`, so callers only prefix
// the field path (`tls_certificates[0].private_key: ...`).
//
// An environment_variable that is unset or empty is an error, as in Envoy
// (envoy: DataSource::read). inline_bytes are copied, so the result never
// aliases ds.
func Read(ds *corev3.DataSource) ([]byte, error) {
	if ds == nil {
		return nil, errors.New("not set")
	}
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return nil, fmt.Errorf("filename %q: %w", s.Filename, err)
		}
		return b, nil
	case *corev3.DataSource_InlineBytes:
		return bytes.Clone(s.InlineBytes), nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_EnvironmentVariable:
		v := os.Getenv(s.EnvironmentVariable)
		if v == "" {
			return nil, fmt.Errorf("environment_variable %q: not set or empty", s.EnvironmentVariable)
		}
		return []byte(v), nil
	default:
		return nil, errors.New("not set")
	}
}
