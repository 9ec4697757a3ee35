#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kube-controller-manager from the pinned Go
# modules in this folder, once per machine. The binaries live outside the
# repository, keyed by version, so later runs reuse them in a second.
#
# Prints the folder holding the binaries on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kube_version="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$here/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$here/go.mod")"
cache_root="${TERRAKIO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/terrakio-operator}"
out="$cache_root/control-plane/kube-$kube_version-etcd-$etcd_version"

if [[ -x "$out/kube-apiserver" && -x "$out/kube-controller-manager" && -x "$out/etcd" ]]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: the Go toolchain is needed to build the control plane" >&2; exit 1; }

echo "building Kubernetes $kube_version and etcd $etcd_version into $out (first run only; takes a while)" >&2
tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

cd "$here"
# Keep the build polite on small machines and reproducible across them.
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly -trimpath"
go build -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager
go build -o "$tmp/etcd" go.etcd.io/etcd/server/v3

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out"
