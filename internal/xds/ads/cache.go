package ads

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// The cache file is a JSON array of DiscoveryResponses (Envoy's JSON
// names), one per resource type, holding the last ACKed version and
// resources. It is written atomically (temporary file, then rename).

// saveCache writes the current resources to CachePath. A failure is
// logged: the cache is an optimisation, never a reason to refuse an update.
func (c *Client) saveCache() {
	if c.opts.CachePath == "" {
		return
	}
	if err := c.writeCache(); err != nil {
		c.log.Warn("cannot write the xDS cache", "path", c.opts.CachePath, "error", err.Error())
	}
}

func (c *Client) writeCache() error {
	var out []json.RawMessage
	for _, u := range allTypes {
		t := c.types[u]
		if t.current == nil {
			continue
		}
		resp := &discoveryv3.DiscoveryResponse{TypeUrl: u, VersionInfo: t.acked}
		for _, name := range sortedKeys(t.current) {
			a, err := anypb.New(wire(t.current[name]))
			if err != nil {
				return err
			}
			resp.Resources = append(resp.Resources, a)
		}
		js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
		if err != nil {
			return err
		}
		out = append(out, js)
	}
	data, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.opts.CachePath), ".xds-cache-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.opts.CachePath)
}

// wire returns the message a decoded resource came from.
func wire(r any) proto.Message {
	switch v := r.(type) {
	case *listener:
		return v.pb
	case *cluster:
		return v.pb
	}
	return r.(proto.Message)
}

// loadCache applies the resources in CachePath, if the file exists and
// they are valid; otherwise the client starts empty and says why.
func (c *Client) loadCache() {
	err := c.readCache()
	switch {
	case os.IsNotExist(err):
		return
	case err != nil:
		for _, t := range c.types {
			t.current, t.acked = nil, ""
		}
		c.log.Warn("ignoring the xDS cache", "path", c.opts.CachePath, "error", err.Error())
		return
	}
	c.log.Info("serving the cached xDS configuration until the control plane answers", "path", c.opts.CachePath)
}

func (c *Client) readCache() error {
	data, err := os.ReadFile(c.opts.CachePath)
	if err != nil {
		return err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	for i, js := range raw {
		resp := &discoveryv3.DiscoveryResponse{}
		if err := protojson.Unmarshal(js, resp); err != nil {
			return fmt.Errorf("[%d]: %w", i, err)
		}
		t, ok := c.types[resp.GetTypeUrl()]
		if !ok {
			return fmt.Errorf("[%d].type_url: %q not supported", i, resp.GetTypeUrl())
		}
		res, err := decodeAll(t.url, resp.GetResources())
		if err != nil {
			return err
		}
		t.current, t.acked = res, resp.GetVersionInfo()
	}
	if c.types[ListenerType].current == nil || c.types[ClusterType].current == nil {
		return fmt.Errorf("no listeners or no clusters")
	}
	r, missing := c.resources(false)
	if missing == fmt.Sprintf("secret %q", IdentitySecret) {
		// Applied by reapply once the proxy has its certificate.
		c.logWaiting(missing)
		return nil
	}
	if missing != "" {
		return fmt.Errorf("%s missing", missing)
	}
	return c.apply(r)
}
