// Package render prints mesh resources for people: tables for lists and a
// text form for describe. JSON and YAML output need no help from it.
package render

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// Table writes objs as a table. Objects of different kinds get one table per
// kind, in the order they first appear. now dates the AGE column.
func Table(w io.Writer, objs []v1alpha1.Object, now time.Time) error {
	var kinds []string
	byKind := map[string][]v1alpha1.Object{}
	for _, o := range objs {
		k := v1alpha1.KindOf(o)
		if _, ok := byKind[k]; !ok {
			kinds = append(kinds, k)
		}
		byKind[k] = append(byKind[k], o)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for i, k := range kinds {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		header, row := columns(k)
		fmt.Fprintln(tw, strings.Join(header, "\t")+"\tAGE")
		for _, o := range byKind[k] {
			fmt.Fprintln(tw, strings.Join(row(o), "\t")+"\t"+age(o.GetCreationTimestamp(), now))
		}
	}
	return tw.Flush()
}

// columns returns a kind's table header and row function.
func columns(kind string) ([]string, func(v1alpha1.Object) []string) {
	switch kind {
	case "Mesh":
		return []string{"NAME", "TRUST DOMAIN", "ACCEPTED"}, func(o v1alpha1.Object) []string {
			m := o.(*v1alpha1.Mesh)
			return []string{m.Name, m.Spec.TrustDomain, accepted(m.Status.Conditions)}
		}
	case "Service":
		return []string{"NAMESPACE", "NAME", "MESH", "PORTS", "SELECTOR", "ACCEPTED"}, func(o v1alpha1.Object) []string {
			s := o.(*v1alpha1.Service)
			var ports []string
			for _, p := range s.Spec.Ports {
				ports = append(ports, strconv.Itoa(int(p.Port))+"/"+string(p.Protocol))
			}
			return []string{s.Namespace, s.Name, v1alpha1.MeshOf(s), join(ports), labels(s.Spec.Selector), accepted(s.Status.Conditions)}
		}
	case "Dataplane":
		return []string{"NAMESPACE", "NAME", "MESH", "ADDRESS", "INBOUND", "OUTBOUND", "CONNECTED", "READY"}, func(o v1alpha1.Object) []string {
			d := o.(*v1alpha1.Dataplane)
			var in, out []string
			for _, ib := range d.Spec.Inbound {
				in = append(in, fmt.Sprintf("%d->%d", ib.Port, ib.AppPort))
			}
			for _, ob := range d.Spec.Outbound {
				out = append(out, fmt.Sprintf("%s:%d", ob.Service, ob.LocalPort))
			}
			if d.Spec.OutboundHTTPPort != 0 {
				out = append(out, fmt.Sprintf("*:%d", d.Spec.OutboundHTTPPort))
			}
			return []string{d.Namespace, d.Name, v1alpha1.MeshOf(d), d.Spec.Address, join(in), join(out),
				strconv.FormatBool(d.Status.Connected), condition(d.Status.Conditions, "Ready")}
		}
	case "TrafficPolicy":
		return []string{"NAMESPACE", "NAME", "MESH", "TARGETS", "ACCEPTED"}, func(o v1alpha1.Object) []string {
			p := o.(*v1alpha1.TrafficPolicy)
			var t []string
			for _, r := range p.Spec.TargetRefs {
				t = append(t, string(r.Kind)+"/"+string(r.Name))
			}
			var conds []metav1.Condition
			if len(p.Status.Ancestors) > 0 {
				conds = p.Status.Ancestors[0].Conditions
			}
			return []string{p.Namespace, p.Name, v1alpha1.MeshOf(p), join(t), accepted(conds)}
		}
	case "AccessPolicy":
		return []string{"NAMESPACE", "NAME", "MESH", "ACTION", "TARGETS", "RULES", "ACCEPTED"}, func(o v1alpha1.Object) []string {
			p := o.(*v1alpha1.AccessPolicy)
			var t []string
			for _, r := range p.Spec.TargetRefs {
				t = append(t, string(r.Kind)+"/"+string(r.Name))
			}
			return []string{p.Namespace, p.Name, v1alpha1.MeshOf(p), string(p.Spec.Action), join(t),
				strconv.Itoa(len(p.Spec.Rules)), accepted(p.Status.Conditions)}
		}
	case "HTTPRoute", "GRPCRoute", "TCPRoute":
		return []string{"NAMESPACE", "NAME", "MESH", "PARENTS", "BACKENDS", "ACCEPTED"}, func(o v1alpha1.Object) []string {
			parents, backends, status := routeParts(o)
			var conds []metav1.Condition
			if len(status) > 0 {
				conds = status[0].Conditions
			}
			return []string{o.GetNamespace(), o.GetName(), v1alpha1.MeshOf(o), join(parents), join(backends), accepted(conds)}
		}
	}
	return []string{"NAMESPACE", "NAME"}, func(o v1alpha1.Object) []string { return []string{o.GetNamespace(), o.GetName()} }
}

func routeParts(o v1alpha1.Object) (parents, backends []string, status []gwv1.RouteParentStatus) {
	addParents := func(refs []gwv1.ParentReference) {
		for _, r := range refs {
			p := string(r.Name)
			if r.Port != nil {
				p += ":" + strconv.Itoa(int(*r.Port))
			}
			parents = append(parents, p)
		}
	}
	addBackend := func(r gwv1.BackendRef) {
		b := string(r.Name)
		if r.Port != nil {
			b += ":" + strconv.Itoa(int(*r.Port))
		}
		if r.Weight != nil {
			b += "(" + strconv.Itoa(int(*r.Weight)) + ")"
		}
		backends = append(backends, b)
	}
	switch r := o.(type) {
	case *gwv1.HTTPRoute:
		addParents(r.Spec.ParentRefs)
		for _, rule := range r.Spec.Rules {
			for _, b := range rule.BackendRefs {
				addBackend(b.BackendRef)
			}
		}
		status = r.Status.Parents
	case *gwv1.GRPCRoute:
		addParents(r.Spec.ParentRefs)
		for _, rule := range r.Spec.Rules {
			for _, b := range rule.BackendRefs {
				addBackend(b.BackendRef)
			}
		}
		status = r.Status.Parents
	case *gwv1.TCPRoute:
		addParents(r.Spec.ParentRefs)
		for _, rule := range r.Spec.Rules {
			for _, b := range rule.BackendRefs {
				addBackend(b)
			}
		}
		status = r.Status.Parents
	}
	return parents, backends, status
}

func accepted(conds []metav1.Condition) string {
	c := find(conds, "Accepted")
	if c == nil {
		return "-"
	}
	if c.Status == metav1.ConditionTrue {
		return "True"
	}
	return string(c.Status) + " (" + c.Reason + ")"
}

func condition(conds []metav1.Condition, typ string) string {
	if c := find(conds, typ); c != nil {
		return string(c.Status)
	}
	return "-"
}

func find(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

func labels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return join(keys)
}

func join(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

// age prints a duration the way kubectl does: 45s, 3m, 5h, 12d.
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t.Time)
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < 2*time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

// Describe writes one object for a person: its document (status included),
// what it references and which proxies it affects.
func Describe(w io.Writer, obj v1alpha1.Object, refs []v1alpha1.Ref, proxies []string) error {
	data, err := yaml.Marshal(obj)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\n", data)
	fmt.Fprintln(w, "References:")
	if len(refs) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	for _, r := range refs {
		fmt.Fprintf(w, "  %s\n", r) // "Kind name" for a cluster-scoped kind
	}
	fmt.Fprintln(w, "Proxies affected:")
	if len(proxies) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	for _, p := range proxies {
		fmt.Fprintf(w, "  %s\n", p)
	}
	return nil
}
