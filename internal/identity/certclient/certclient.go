// Package certclient is the proxy's client of the control plane's
// certificate service: it trades a dataplane token and a CSR for the
// proxy's X.509-SVID. The private key is made here (csr.NewKey), a new one
// for every certificate, and never leaves the process.
//
// Wire contract (no generated code; google.protobuf.Struct in and out, on
// the control plane's xDS gRPC port, metadata "authorization: Bearer
// <token>" and "trellis-node: <node id>"):
//
//	/trellis.identity.v1.Identity/Identify  {}                 → {"id": "spiffe://<td>/<mesh>/<service>"}
//	/trellis.identity.v1.Identity/Sign      {"csr": b64(DER)}  → {"chain": [b64(DER), ...], "bundle": PEM, "id": "..."}
//
// base64 is standard encoding with padding; the chain runs leaf first.
// Identify tells the proxy which identity its token grants, since the
// trust domain (Mesh.spec.trustDomain) is known only to the control plane.
// A control plane without Identify (Unimplemented) makes the client fall
// back to the default trust domain <mesh>.trellis.local with the mesh and
// service read from the token's unverified claims.
//
// Client.Renew is rotate.Options.Renew. A Client is safe for concurrent
// use, though the rotator calls it from one goroutine.
package certclient

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/identity/csr"
	"github.com/trellis-mesh/trellis/internal/identity/spiffe"
)

// The certificate service's full method names.
const (
	IdentifyMethod = "/trellis.identity.v1.Identity/Identify"
	SignMethod     = "/trellis.identity.v1.Identity/Sign"
)

// NodeMetadata is the request metadata key carrying the proxy's node id.
const NodeMetadata = "trellis-node"

// DefaultTimeout bounds one call to the control plane when
// Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Options configure a Client.
type Options struct {
	// Conn is the connection to the control plane's gRPC endpoint.
	// Required.
	Conn grpc.ClientConnInterface
	// Token returns the dataplane token. Required. It is called before
	// every request, so a token file replaced on disk (after a revocation)
	// is picked up at the next renewal; see FileToken.
	Token func() (string, error)
	// Mesh and Service name the identity the proxy runs as, its
	// Dataplane's (ads.DataplaneIdentity). Empty means the mesh or service
	// the token grants. A token granting another service than Service
	// gets PermissionDenied from the control plane: the proxy must not
	// serve under an identity its peers do not expect.
	Mesh, Service string
	// Node is the proxy's xDS node id, sent as the "trellis-node"
	// metadata so the control plane's record of issued certificates (which
	// a CA rotation waits on) replaces this proxy's earlier leaf. Empty
	// sends none.
	Node string
	// Timeout bounds each call. Zero means DefaultTimeout (10s).
	Timeout time.Duration
	// Logger receives the fallback warning. Nil means slog.Default().
	Logger *slog.Logger
}

// Client obtains certificates from the control plane.
type Client struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	tok    string      // the token id was learned with
	id     spiffeid.ID // zero: ask Identify
	warned bool
}

// New returns a Client.
func New(opts Options) (*Client, error) {
	if opts.Conn == nil {
		return nil, errors.New("certclient: options: Conn is required")
	}
	if opts.Token == nil {
		return nil, errors.New("certclient: options: Token is required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Client{opts: opts, log: log.With("component", "identity")}, nil
}

// CallError is a refusal from the certificate service. Its text is what
// the proxy logs, e.g. "identity: token rejected: Unauthenticated: token
// revoked".
type CallError struct {
	Method  string
	Code    codes.Code
	Message string
}

func (e *CallError) Error() string {
	switch e.Code {
	case codes.Unauthenticated:
		return "identity: token rejected: Unauthenticated: " + e.Message
	case codes.PermissionDenied:
		return "identity: certificate refused: PermissionDenied: " + e.Message
	case codes.InvalidArgument:
		return "identity: certificate request refused: InvalidArgument: " + e.Message
	case codes.Unimplemented:
		return fmt.Sprintf("identity: the control plane does not serve %s (Unimplemented): %s", e.Method, e.Message)
	}
	return fmt.Sprintf("identity: %s: %s: %s", e.Method, e.Code, e.Message)
}

func callError(method string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("identity: %s: %w", method, err)
	}
	return &CallError{Method: method, Code: st.Code(), Message: st.Message()}
}

// Renew makes a new key and a CSR for the proxy's identity, has the
// control plane sign it, and returns the certificate (chain and key, Leaf
// set) after checking that the leaf carries the key and exactly that
// identity and, when the answer includes the trust bundle, that the chain
// verifies against it.
func (c *Client) Renew(ctx context.Context) (*tls.Certificate, error) {
	tok, err := c.opts.Token()
	if err != nil {
		return nil, err
	}
	id, err := c.identity(ctx, tok)
	if err != nil {
		return nil, err
	}
	key, err := csr.NewKey()
	if err != nil {
		return nil, err
	}
	der, err := csr.Build(key, id)
	if err != nil {
		return nil, err
	}
	req, _ := structpb.NewStruct(map[string]any{"csr": base64.StdEncoding.EncodeToString(der)}) // strings only: cannot fail
	resp := &structpb.Struct{}
	if err := c.call(ctx, SignMethod, tok, req, resp); err != nil {
		var ce *CallError
		if errors.As(err, &ce) && (ce.Code == codes.Unauthenticated || ce.Code == codes.PermissionDenied) {
			c.forget() // ask again which identity the token grants
		}
		return nil, err
	}
	chain, bundle, err := parseSign(resp, id)
	if err != nil {
		return nil, err
	}
	cert, err := csr.TLSCertificate(key, id, chain)
	if err != nil {
		return nil, fmt.Errorf("identity: %s response: %w", SignMethod, err)
	}
	if bundle != nil {
		if err := verify(cert, bundle); err != nil {
			return nil, fmt.Errorf("identity: %s response: chain: %w", SignMethod, err)
		}
	}
	return cert, nil
}

// ID returns the identity learned last, or the zero ID before the first
// successful Identify (or fallback).
func (c *Client) ID() spiffeid.ID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

func (c *Client) forget() {
	c.mu.Lock()
	c.id = spiffeid.ID{}
	c.mu.Unlock()
}

// identity returns the identity to ask for: spiffe://<td>/<mesh>/<service>
// with the trust domain of the identity tok grants (learned with Identify
// once per token, or, from a control plane without Identify, the default
// <mesh>.trellis.local) and the mesh and service of Options, defaulting
// to the token's.
func (c *Client) identity(ctx context.Context, tok string) (spiffeid.ID, error) {
	c.mu.Lock()
	if !c.id.IsZero() && c.tok == tok {
		id := c.id
		c.mu.Unlock()
		return id, nil
	}
	c.mu.Unlock()
	resp := &structpb.Struct{}
	var id spiffeid.ID
	err := c.call(ctx, IdentifyMethod, tok, &structpb.Struct{}, resp)
	var ce *CallError
	switch {
	case errors.As(err, &ce) && ce.Code == codes.Unimplemented:
		mesh, service, cerr := UnverifiedClaims(tok)
		if cerr != nil {
			return spiffeid.ID{}, cerr
		}
		mesh, service = cmp.Or(c.opts.Mesh, mesh), cmp.Or(c.opts.Service, service)
		if id, err = spiffe.ID(mesh+".trellis.local", mesh, service); err != nil {
			return spiffeid.ID{}, fmt.Errorf("identity: %w", err)
		}
		c.mu.Lock()
		warn := !c.warned
		c.warned = true
		c.mu.Unlock()
		if warn {
			c.log.Warn("the control plane does not serve "+IdentifyMethod+"; assuming the default trust domain",
				"id", id.String())
		}
	case err != nil:
		return spiffeid.ID{}, err
	default:
		granted, err := parseIdentify(resp)
		if err != nil {
			return spiffeid.ID{}, err
		}
		id, err = spiffe.ID(granted.TrustDomain.Name(), cmp.Or(c.opts.Mesh, granted.Mesh), cmp.Or(c.opts.Service, granted.Service))
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("identity: %w", err)
		}
	}
	c.mu.Lock()
	c.tok, c.id = tok, id
	c.mu.Unlock()
	return id, nil
}

func (c *Client) call(ctx context.Context, method, tok string, req, resp *structpb.Struct) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	if c.opts.Node != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, NodeMetadata, c.opts.Node)
	}
	if err := c.opts.Conn.Invoke(ctx, method, req, resp); err != nil {
		return callError(method, err)
	}
	return nil
}

// parseIdentify reads Identify's answer.
func parseIdentify(resp *structpb.Struct) (spiffe.Workload, error) {
	s, err := stringField(IdentifyMethod, resp, "id", true)
	if err != nil {
		return spiffe.Workload{}, err
	}
	w, err := spiffe.Parse(s)
	if err != nil {
		return spiffe.Workload{}, fmt.Errorf("identity: %s response: id: %w", IdentifyMethod, err)
	}
	return w, nil
}

// parseSign reads Sign's answer: the chain (DER, leaf first) and the
// trust bundle if there is one; an "id" field, if present, must be want.
func parseSign(resp *structpb.Struct, want spiffeid.ID) ([][]byte, *x509.CertPool, error) {
	prefix := "identity: " + SignMethod + " response: "
	if id, err := stringField(SignMethod, resp, "id", false); err != nil {
		return nil, nil, err
	} else if id != "" && id != want.String() {
		return nil, nil, fmt.Errorf("%sid: %q, but the CSR asked for %q", prefix, id, want)
	}
	v, ok := resp.GetFields()["chain"]
	if !ok {
		return nil, nil, errors.New(prefix + "chain: missing")
	}
	list := v.GetListValue()
	if list == nil {
		return nil, nil, fmt.Errorf("%schain: want a list of base64 certificates, got %s", prefix, kind(v))
	}
	if len(list.GetValues()) == 0 {
		return nil, nil, errors.New(prefix + "chain: empty")
	}
	var chain [][]byte
	for i, e := range list.GetValues() {
		s, ok := e.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return nil, nil, fmt.Errorf("%schain[%d]: want a base64 string, got %s", prefix, i, kind(e))
		}
		der, err := base64.StdEncoding.DecodeString(s.StringValue)
		if err != nil {
			return nil, nil, fmt.Errorf("%schain[%d]: %w", prefix, i, err)
		}
		chain = append(chain, der)
	}
	b, err := stringField(SignMethod, resp, "bundle", false)
	if err != nil || b == "" {
		return chain, nil, err
	}
	pool := x509.NewCertPool()
	rest := []byte(b)
	for n := 0; ; n++ {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if n == 0 {
				return nil, nil, errors.New(prefix + "bundle: no PEM certificate")
			}
			break
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if blk.Type != "CERTIFICATE" || err != nil {
			return nil, nil, fmt.Errorf("%sbundle: block %d: not a certificate", prefix, n)
		}
		pool.AddCert(cert)
	}
	return chain, pool, nil
}

// verify checks that cert's chain leads to a root of bundle.
func verify(cert *tls.Certificate, bundle *x509.CertPool) error {
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		inter.AddCert(c)
	}
	_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: bundle, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

func stringField(method string, s *structpb.Struct, name string, required bool) (string, error) {
	v, ok := s.GetFields()[name]
	if !ok {
		if required {
			return "", fmt.Errorf("identity: %s response: %s: missing", method, name)
		}
		return "", nil
	}
	sv, ok := v.GetKind().(*structpb.Value_StringValue)
	if !ok {
		return "", fmt.Errorf("identity: %s response: %s: want a string, got %s", method, name, kind(v))
	}
	return sv.StringValue, nil
}

func kind(v *structpb.Value) string {
	switch v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return "a string"
	case *structpb.Value_NumberValue:
		return "a number"
	case *structpb.Value_BoolValue:
		return "a bool"
	case *structpb.Value_ListValue:
		return "a list"
	case *structpb.Value_StructValue:
		return "an object"
	}
	return "null"
}
