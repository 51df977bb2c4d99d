package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/trellis-mesh/trellis/internal/control/meshca"
	"github.com/trellis-mesh/trellis/internal/control/server"
)

// CreateToken issues a dataplane token for mesh and service; ttl is a Go
// duration ("" for the default, one year). The answer holds the token,
// shown only here.
func (c *Client) CreateToken(ctx context.Context, mesh, service, ttl string) (meshca.IssuedToken, error) {
	var out meshca.IssuedToken
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/tokens", nil, server.TokenRequest{Mesh: mesh, Service: service, TTL: ttl}, &out)
	return out, err
}

// ListTokens returns the token records of mesh ("" for every mesh).
func (c *Client) ListTokens(ctx context.Context, mesh string) ([]meshca.TokenRecord, error) {
	var out server.TokenList
	err := c.do(ctx, http.MethodGet, "/api/v1/tokens", meshQuery(mesh), nil, &out)
	return out.Items, err
}

// RevokeToken revokes the token with id (mesh "" when the id is unique)
// and returns its record.
func (c *Client) RevokeToken(ctx context.Context, mesh, id string) (meshca.TokenRecord, error) {
	var out meshca.TokenRecord
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/tokens/"+url.PathEscape(id)+"/revoke", meshQuery(mesh), nil, &out)
	return out, err
}

// CAStatus returns the CA status of mesh.
func (c *Client) CAStatus(ctx context.Context, mesh string) (meshca.CAStatus, error) {
	var out meshca.CAStatus
	err := c.do(ctx, http.MethodGet, "/api/v1/ca/"+url.PathEscape(mesh), nil, nil, &out)
	return out, err
}

// RotateCA takes one step of a CA rotation and returns the status after it.
func (c *Client) RotateCA(ctx context.Context, req meshca.RotateRequest) (meshca.CAStatus, error) {
	var out meshca.CAStatus
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/ca/rotate", nil, req, &out)
	return out, err
}

func meshQuery(mesh string) url.Values {
	if mesh == "" {
		return nil
	}
	return url.Values{"mesh": {mesh}}
}

// doJSON is do with in (if not nil) sent as a JSON body.
func (c *Client) doJSON(ctx context.Context, method, path string, q url.Values, in, out any) error {
	body := []byte("{}")
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	return c.do(ctx, method, path, q, bytes.NewReader(body), out)
}
