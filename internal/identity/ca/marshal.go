package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// document is a CA as stored: the chain and the PKCS#8 key as PEM.
type document struct {
	TrustDomain string `json:"trustDomain"`
	Chain       string `json:"chain"`
	Key         string `json:"key"`
}

func (c *CA) document() (document, error) {
	var chain bytes.Buffer
	for _, cert := range c.chain {
		_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}) // bytes.Buffer writes cannot fail
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return document{}, fmt.Errorf("ca: marshal key: %w", err)
	}
	return document{
		TrustDomain: c.td.Name(),
		Chain:       chain.String(),
		Key:         string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}, nil
}

func (d document) ca(opts Options) (*CA, error) {
	td, err := spiffeid.TrustDomainFromString(d.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("ca: trustDomain %q: %w", d.TrustDomain, err)
	}
	chain, key, err := parsePEM([]byte(d.Chain), []byte(d.Key))
	if err != nil {
		return nil, err
	}
	return build(td, chain, key, opts)
}

// Marshal encodes c as JSON, {"trustDomain", "chain" (PEM), "key" (PKCS#8
// PEM)}, for the control plane's store. The key is in clear: protect the
// store accordingly.
func Marshal(c *CA) ([]byte, error) {
	if c == nil {
		return nil, errors.New("ca: marshal: nil CA")
	}
	d, err := c.document()
	if err != nil {
		return nil, err
	}
	return json.Marshal(d)
}

// Unmarshal decodes what Marshal wrote. It checks the chain and key as New
// does, except for time: an expired CA loads (so it can be rotated away
// from) and fails only when asked to Sign.
func Unmarshal(data []byte, opts Options) (*CA, error) {
	var d document
	if err := strictJSON(data, &d); err != nil {
		return nil, fmt.Errorf("ca: unmarshal: %w", err)
	}
	return d.ca(opts)
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
		return errors.New("trailing data after the JSON document")
	}
	return nil
}
