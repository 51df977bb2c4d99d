package meshca_test

import (
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/trellis-mesh/trellis/internal/control/meshca"
	"github.com/trellis-mesh/trellis/internal/control/xdsserver"
)

// statuses is a fixed table of node statuses.
type statuses map[string]xdsserver.NodeStatus

func (s statuses) Nodes() []string {
	var ids []string
	for id := range s {
		ids = append(ids, id)
	}
	return ids
}

func (s statuses) Status(id string) (xdsserver.NodeStatus, bool) { st, ok := s[id]; return st, ok }

func secret(sent, acked string) map[string]xdsserver.TypeStatus {
	return map[string]xdsserver.TypeStatus{resource.SecretType: {SentVersion: sent, AckedVersion: acked}}
}

func TestProxiesBehind(t *testing.T) {
	nodes := statuses{
		"default/current":     {Connected: true, Types: secret("v2", "v2")},
		"default/old":         {Connected: true, Types: secret("v2", "v1")},
		"default/unanswered":  {Connected: true, Types: secret("v2", "")},
		"default/no-secrets":  {Connected: true, Types: map[string]xdsserver.TypeStatus{resource.ClusterType: {AckedVersion: "x"}}},
		"default/gone":        {Connected: false, Types: secret("v2", "v1")},
		"other/old":           {Connected: true, Types: secret("v2", "v1")},
		"default/not-a-proxy": {Connected: true, Types: secret("v2", "v1")},
	}
	meshOf := func(id string) (string, bool) {
		switch id {
		case "other/old":
			return "other", true
		case "default/not-a-proxy":
			return "", false
		}
		return "default", true
	}
	if got := meshca.ProxiesBehind(nodes, meshOf, "default", meshca.SameVersion("v2")); got != 2 {
		t.Errorf("default behind v2: %d, want 2 (old, unanswered)", got)
	}
	if got := meshca.ProxiesBehind(nodes, meshOf, "other", meshca.SameVersion("v1")); got != 0 {
		t.Errorf("other behind v1: %d, want 0", got)
	}
}
