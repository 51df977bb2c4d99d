package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Object is any resource Trellis stores: its own kinds and the Gateway API
// routes alike (all of them are pointers to structs embedding TypeMeta and
// ObjectMeta).
type Object interface {
	metav1.Object
	GetObjectKind() schema.ObjectKind
}

// MeshOf returns the mesh a resource belongs to: its MeshLabel, or
// DefaultMesh.
func MeshOf(o metav1.Object) string {
	if m := o.GetLabels()[MeshLabel]; m != "" {
		return m
	}
	return DefaultMesh
}

// NamespaceOf returns the resource's namespace, or DefaultNamespace.
func NamespaceOf(o metav1.Object) string {
	if ns := o.GetNamespace(); ns != "" {
		return ns
	}
	return DefaultNamespace
}

// Selects reports whether a Service selector picks an object with labels:
// every pair of the selector is among the labels. An empty selector
// selects nothing (ServiceSpec.Selector).
func Selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}
