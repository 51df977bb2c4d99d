package meshca

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/trellis-mesh/trellis/internal/identity"
	"github.com/trellis-mesh/trellis/internal/identity/ca"
	"github.com/trellis-mesh/trellis/internal/store"
)

// kindLeaf is the store record of a proxy's latest leaf:
// Leaf/<mesh>/<node, path-escaped>. One record per proxy, overwritten at
// each renewal and deleted once expired, so every replica counts every
// proxy's leaf (LeavesFromOld) whichever replica issued it, and a
// restarted replica forgets nothing.
const kindLeaf = "Leaf"

// leafRecord is a Leaf record.
type leafRecord struct {
	Node    string `json:"node"`
	Service string `json:"service"`
	Serial  string `json:"serial"`
	// Issuer is the hex SHA-256 of the DER of the CA certificate that
	// signed the leaf.
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"notAfter"`
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// recordLeaf stores the leaf as its node's latest. st is the CA state that
// signed it.
func (m *Manager) recordLeaf(ctx context.Context, is *identity.Issued, st *ca.State) error {
	if st == nil || len(is.Chain) == 0 {
		return fmt.Errorf("no signing state recorded for the issued leaf")
	}
	leaf := is.Chain[0]
	node := nodeOf(ctx, is.Token.ID)
	rec := leafRecord{Node: node, Service: is.Token.Service, Serial: leaf.SerialNumber.Text(16),
		Issuer: fingerprint(st.Signer().Certificate()), NotAfter: leaf.NotAfter.UTC()}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = m.store.Update(ctx, store.Key{Kind: kindLeaf, Namespace: is.Token.Mesh, Name: url.PathEscape(node)}, data, 0)
	return err
}

// Progress reports what the mesh's rotation phase waits for:
// ProxiesBehind from Options.ProxiesBehind for the current bundle version
// (this replica's connected proxies), and, in SignWithNew, LeavesFromOld:
// the proxies whose latest leaf, issued by any replica, was signed by the
// old CA and has not expired.
func (m *Manager) Progress(ctx context.Context, mesh string, st *ca.State) (ca.Progress, error) {
	var p ca.Progress
	if m.opts.ProxiesBehind != nil {
		p.ProxiesBehind = m.opts.ProxiesBehind(mesh, st.Bundle().Version())
	}
	if st.Phase() != ca.PhaseSignWithNew {
		return p, nil
	}
	old := fingerprint(st.Current().Certificate())
	err := m.eachLeaf(ctx, mesh, func(r leafRecord) {
		if r.Issuer == old {
			p.LeavesFromOld++
		}
	})
	return p, err
}

// eachLeaf calls fn with every unexpired leaf record of mesh ("" for every
// mesh) and deletes the expired ones it finds.
func (m *Manager) eachLeaf(ctx context.Context, mesh string, fn func(leafRecord)) error {
	list, _, err := m.store.List(ctx, kindLeaf)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, res := range list {
		if mesh != "" && res.Key.Namespace != mesh {
			continue
		}
		var r leafRecord
		if err := json.Unmarshal(res.Value, &r); err != nil {
			return fmt.Errorf("stored leaf record %s: %w", res.Key, err)
		}
		if !r.NotAfter.After(now) {
			// Expired: nobody holds it usefully any more. A failed or
			// lost delete (a renewal just overwrote it) is harmless.
			_, _ = m.store.Delete(ctx, res.Key, res.Revision)
			continue
		}
		fn(r)
	}
	return nil
}

// collectLeaves deletes expired leaf records every interval until ctx ends.
func (m *Manager) collectLeaves(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.eachLeaf(ctx, "", func(leafRecord) {}); err != nil && ctx.Err() == nil {
				m.log.Warn("collecting expired leaf records", "error", err)
			}
		}
	}
}
