// Package grpcbootstrap renders the xDS bootstrap file a proxyless gRPC
// application (grpc-go, grpc-java, gRPC C++ and its wrappers) reads from
// GRPC_XDS_BOOTSTRAP or GRPC_XDS_BOOTSTRAP_CONFIG to find the Trellis control
// plane. The format is gRFC A27 as grpc-go v1.85 parses it
// (google.golang.org/grpc/internal/xds/bootstrap).
package grpcbootstrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
)

// Metadata keys of the bootstrap's node.
const (
	// MetadataProxyless marks the node as a proxyless gRPC client; the
	// control plane answers it with exactly the resources it names.
	MetadataProxyless = "trellis.dev/proxyless"
	// MetadataService is the Trellis Service the application runs as.
	MetadataService = "trellis.dev/service"
)

// DefaultServerURI is the address of the control plane's xDS endpoint when
// Options.ServerURI is empty (the `trellis control` default).
const DefaultServerURI = "127.0.0.1:7071"

// Options describes the application the bootstrap is for.
type Options struct {
	// ServerURI is the control plane's xDS address, host:port.
	// Empty means DefaultServerURI.
	ServerURI string
	// Service is the name of the Trellis Service the application runs as.
	// Required. It is recorded in the node metadata; it does not limit the
	// targets the application may dial.
	Service string
	// Mesh is the mesh the application belongs to (the node's cluster).
	// Empty means "default".
	Mesh string
	// NodeID identifies the application to the control plane. Empty means
	// "proxyless/<Service>": all instances of the service then share one
	// configuration and one status entry.
	NodeID string
	// Region, Zone and SubZone are the node's locality. Empty means none.
	Region, Zone, SubZone string
	// Metadata is added to the node metadata. It must be JSON-encodable
	// and must not set the trellis.dev/ keys above. Nil means none.
	Metadata map[string]any
}

// bootstrap is the JSON document grpc-go reads.
type bootstrap struct {
	XDSServers []xdsServer `json:"xds_servers"`
	Node       node        `json:"node"`
}

type xdsServer struct {
	ServerURI      string        `json:"server_uri"`
	ChannelCreds   []channelCred `json:"channel_creds"`
	ServerFeatures []string      `json:"server_features"`
}

type channelCred struct {
	Type string `json:"type"`
}

type node struct {
	ID       string         `json:"id"`
	Cluster  string         `json:"cluster"`
	Metadata map[string]any `json:"metadata"`
	Locality *locality      `json:"locality,omitempty"`
}

type locality struct {
	Region  string `json:"region,omitempty"`
	Zone    string `json:"zone,omitempty"`
	SubZone string `json:"sub_zone,omitempty"`
}

// Generate returns the bootstrap JSON for opts, indented, with a final
// newline.
//
// Security: the channel to the control plane is plaintext ("insecure"
// channel credentials) until Trellis serves xDS over TLS; keep the xDS
// address on loopback or a trusted network.
func Generate(opts Options) ([]byte, error) {
	if opts.Service == "" {
		return nil, errors.New("service: required")
	}
	uri := opts.ServerURI
	if uri == "" {
		uri = DefaultServerURI
	}
	if _, _, err := net.SplitHostPort(uri); err != nil {
		return nil, fmt.Errorf("server uri %q: want host:port: %w", uri, err)
	}
	mesh := opts.Mesh
	if mesh == "" {
		mesh = "default"
	}
	id := opts.NodeID
	if id == "" {
		id = "proxyless/" + opts.Service
	}
	md := make(map[string]any, len(opts.Metadata)+2)
	for k, v := range opts.Metadata {
		if k == MetadataProxyless || k == MetadataService {
			return nil, fmt.Errorf("metadata %q: set by Trellis", k)
		}
		md[k] = v
	}
	md[MetadataProxyless] = true
	md[MetadataService] = opts.Service
	b := bootstrap{
		XDSServers: []xdsServer{{
			ServerURI:    uri,
			ChannelCreds: []channelCred{{Type: "insecure"}},
			// grpc-go speaks only xDS v3 and ignores this; other gRPC
			// implementations read it.
			ServerFeatures: []string{"xds_v3"},
		}},
		Node: node{ID: id, Cluster: mesh, Metadata: md},
	}
	if opts.Region != "" || opts.Zone != "" || opts.SubZone != "" {
		b.Node.Locality = &locality{Region: opts.Region, Zone: opts.Zone, SubZone: opts.SubZone}
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return append(out, '\n'), nil
}
