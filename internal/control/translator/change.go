package translator

import "github.com/trellis-mesh/trellis/api/v1alpha1"

// Change is a set of changed objects (both versions of each, as DependsOn
// takes them) prepared for checking many proxies: DependsOnChange costs
// about the number of Services a proxy reads, however many Dataplanes
// changed, where calling DependsOn for each object costs Dataplanes ×
// Services read. A burst of proxies connecting changes a Dataplane each.
type Change struct {
	others     []v1alpha1.Object              // everything but Dataplanes
	dataplanes map[ServiceKey]bool            // by mesh-less key; the mesh is checked through selected
	selected   map[string]map[ServiceKey]bool // by mesh: the Services selecting a changed Dataplane
	meshes     map[string]bool                // meshes with a changed Dataplane
}

// Change prepares changed for DependsOnChange. idx is the Index after the
// change.
func (idx *Index) Change(changed []v1alpha1.Object) *Change {
	c := &Change{dataplanes: map[ServiceKey]bool{}, selected: map[string]map[ServiceKey]bool{}, meshes: map[string]bool{}}
	for _, o := range changed {
		dp, ok := o.(*v1alpha1.Dataplane)
		if !ok {
			c.others = append(c.others, o)
			continue
		}
		mesh := v1alpha1.MeshOf(dp)
		c.meshes[mesh] = true
		c.dataplanes[keyOf(dp)] = true
		sel := c.selected[mesh]
		if sel == nil {
			sel = map[ServiceKey]bool{}
			c.selected[mesh] = sel
		}
		if m := idx.meshes[mesh]; m != nil {
			for _, s := range m.selecting(dp.Labels) {
				sel[s.key] = true
			}
		}
	}
	return c
}

// DependsOnChange reports whether r.DependsOn(o) holds for some o of the
// change, up to Services that changed as well (whose change r depends on
// in any case).
func (r *Resources) DependsOnChange(c *Change) bool {
	for _, o := range c.others {
		if r.DependsOn(o) {
			return true
		}
	}
	if !c.meshes[r.mesh] {
		return false
	}
	if r.self != nil && c.dataplanes[*r.self] {
		return true // may be another mesh's Dataplane of that name: errs on the side of true
	}
	sel := c.selected[r.mesh]
	if len(sel) < len(r.Services) {
		for k := range sel {
			if r.Services[k] {
				return true
			}
		}
		return false
	}
	for k := range r.Services {
		if sel[k] {
			return true
		}
	}
	return false
}
