package meshca

import (
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/trellis-mesh/trellis/internal/control/xdsserver"
)

// BundleSecret is the name of the SDS secret carrying a mesh's trust
// bundle (validation_context.trusted_ca.inline_bytes = Bundle's PEM).
const BundleSecret = "trellis-trust-bundle"

// NodeStatuses is what ProxiesBehind reads of the xDS server;
// *xdsserver.Server implements it.
type NodeStatuses interface {
	Nodes() []string
	Status(nodeID string) (xdsserver.NodeStatus, bool)
}

var _ NodeStatuses = (*xdsserver.Server)(nil)

// ProxiesBehind counts the connected nodes of mesh (meshOf names a node's
// mesh, false for a node it does not know) that have been sent the SDS
// Secret type and whose acknowledged Secret version does not carry the
// current bundle: holds(nodeID, ackedVersion) says whether it does. With
// Secret versions equal to bundle versions, holds is SameVersion(v). A
// node never sent a Secret holds no trust bundle that could be stale and
// is not counted (it gets the current one when its mesh turns on mTLS);
// one that has not acknowledged the latest push counts as behind.
func ProxiesBehind(x NodeStatuses, meshOf func(nodeID string) (string, bool), mesh string, holds func(nodeID, ackedVersion string) bool) int {
	n := 0
	for _, id := range x.Nodes() {
		if m, ok := meshOf(id); !ok || m != mesh {
			continue
		}
		st, ok := x.Status(id)
		if !ok || !st.Connected {
			continue
		}
		t, ok := st.Types[resource.SecretType]
		if !ok || (t.SentVersion == "" && t.AckedVersion == "") {
			continue
		}
		if !holds(id, t.AckedVersion) {
			n++
		}
	}
	return n
}

// SameVersion is the holds function of ProxiesBehind when the Secret
// resources' xDS version is the bundle version itself.
func SameVersion(bundleVersion string) func(nodeID, ackedVersion string) bool {
	return func(_, acked string) bool { return acked == bundleVersion }
}
