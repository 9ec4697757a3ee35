//go:build tools

// Package controlplane pins the Kubernetes control-plane binaries that the
// end-to-end tests start. It is never compiled: the blank imports only make
// `go mod tidy` record every module the binaries need in go.sum.
package controlplane

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
