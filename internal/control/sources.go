package control

import (
	"context"
	"errors"
	"fmt"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
	"github.com/trellis-mesh/trellis/internal/discovery"
	"github.com/trellis-mesh/trellis/internal/store"
)

// SourceAnnotation names the discovery source a Dataplane came from; the
// source owns those Dataplanes and removes them when it no longer lists
// them.
const SourceAnnotation = "trellis.dev/source"

// storeSink writes discovery views to the store through the manager, so
// they are validated and deduplicated like any apply.
type storeSink struct{ c *Control }

// Sync implements discovery.Sink.
func (s storeSink) Sync(ctx context.Context, snap discovery.Snapshot) error {
	want := map[string]bool{}
	var errs []error
	for _, dp := range snap.Dataplanes {
		cp := *dp
		cp.ObjectMeta = *dp.ObjectMeta.DeepCopy()
		dp = &cp
		ann := dp.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[SourceAnnotation] = snap.Source
		dp.SetAnnotations(ann)
		want[v1alpha1.NamespaceOf(dp)+"/"+dp.Name] = true
		if _, err := s.c.mgr.Put(ctx, dp); err != nil {
			errs = append(errs, fmt.Errorf("dataplane %s/%s: %w", v1alpha1.NamespaceOf(dp), dp.Name, err))
		}
	}
	list, _, err := s.c.store.List(ctx, v1alpha1.KindDataplane)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, res := range list {
		obj, err := v1alpha1.Decode(res.Value)
		if err != nil || obj.GetAnnotations()[SourceAnnotation] != snap.Source || want[res.Key.Namespace+"/"+res.Key.Name] {
			continue
		}
		if _, err := s.c.store.Delete(ctx, res.Key, res.Revision); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("removing dataplane %s: %w", res.Key, err))
			continue
		}
		s.c.log.Info("dataplane withdrawn by its source", "dataplane", res.Key.String(), "source", snap.Source)
	}
	return errors.Join(errs...)
}
