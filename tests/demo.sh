#!/usr/bin/env bash
# The operator end to end, for a person to watch: a real control plane on loopback, the fake
# Terrakio API, and the operator turning a TerrakioCredential into a working API key.
#
#   bash tests/demo.sh          run through it, then stop everything
#   bash tests/demo.sh --keep   leave it all running until ctrl-c, to explore with kubectl
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
keep=false
[[ ${1:-} == --keep ]] && keep=true

work="$(mktemp -d -t terrakio-demo.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # etcd's files hold the demo's password and key: leave nothing behind.
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { echo "demo: $*" >&2; exit 1; }

step "Building the operator and the fake Terrakio API"
cargo build --quiet --manifest-path "$repo/Cargo.toml" --workspace --bins
bin="$repo/target/debug"

step "Starting Kubernetes (etcd, kube-apiserver, kube-controller-manager) on loopback"
bash "$repo/tests/control-plane/up.sh" "$work/cluster" --watch-pid $$ >"$work/up.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do
  [[ -e $work/cluster/ready ]] && break
  kill -0 "${pids[0]}" 2>/dev/null || fail "the control plane did not start: $(tail -20 "$work/up.log")"
  sleep 0.5
done
[[ -e $work/cluster/ready ]] || fail "the control plane was not ready in time"
export KUBECONFIG="$work/cluster/kubeconfig"
kubectl get --raw /version | grep -E '"gitVersion"|"minor"' || true

step "Starting the fake Terrakio API with one account"
"$bin/fake-terrakio" --listen 127.0.0.1:0 --account "demo@example.com:demo-password" \
  >"$work/fake.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$work/fake.log" && break; sleep 0.1; done
terrakio="$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$work/fake.log")"
[[ -n $terrakio ]] || fail "the fake did not start: $(cat "$work/fake.log")"
echo "Terrakio (fake) at $terrakio"

step "kubectl apply -f crds/"
kubectl apply -f "$repo/crds/"
kubectl wait --for=condition=Established --timeout=60s crd/terrakiocredentials.terrak.io

step "Starting the operator (logs in $work/operator.log)"
"$bin/terrakio-operator" run --allow-insecure-endpoints >"$work/operator.log" 2>&1 &
pids+=($!)

step "Applying a login Secret and a TerrakioCredential"
manifest="$(cat <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: terrakio-login
  namespace: default
stringData:
  email: demo@example.com
  password: demo-password
---
apiVersion: terrak.io/v1alpha1
kind: TerrakioCredential
metadata:
  name: terrakio
  namespace: default
spec:
  endpoint: $terrakio
  loginSecretRef:
    name: terrakio-login
YAML
)"
echo "$manifest"
echo "$manifest" | kubectl apply -f -

step "Waiting for Ready"
kubectl wait --for=condition=Ready --timeout=30s tkc/terrakio || {
  tail -20 "$work/operator.log"
  fail "the credential did not become Ready"
}
kubectl get tkc terrakio
kubectl get secret terrakio --show-labels

step "Calling the Terrakio data endpoint with the key from the Secret"
key="$(kubectl get secret terrakio -o jsonpath='{.data.TERRAKIO_API_KEY}' | base64 -d)"
fingerprint="$(kubectl get tkc terrakio -o jsonpath='{.status.keyFingerprint}')"
echo "key fingerprint in status: $fingerprint (the key itself is never shown)"
header_status="$(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $key" "$terrakio/wcs")"
param_status="$(curl -s -o /dev/null -w '%{http_code}' "$terrakio/wcs?api-key=$key")"
wrong_status="$(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: wrong" "$terrakio/wcs")"
echo "GET /wcs with x-api-key header: HTTP $header_status"
echo "GET /wcs with ?api-key=:        HTTP $param_status"
echo "GET /wcs with a wrong key:      HTTP $wrong_status"
[[ $header_status == 200 && $param_status == 200 && $wrong_status == 401 ]] \
  || fail "the data endpoint did not answer as expected"

step "Events the operator recorded"
kubectl get events --field-selector involvedObject.name=terrakio -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message

step "Deleting the Secret: the operator restores it with the same key"
kubectl delete secret terrakio
kubectl wait --for=create --timeout=20s secret/terrakio >/dev/null 2>&1 || sleep 3
restored="$(kubectl get secret terrakio -o jsonpath='{.data.TERRAKIO_API_KEY}' | base64 -d)"
[[ $restored == "$key" ]] && echo "restored with the same key" || fail "the Secret was not restored"
unset key restored

if $keep; then
  step "Everything keeps running. In another shell:"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  kubectl get tkc -A; kubectl describe tkc terrakio"
  echo "Operator logs: $work/operator.log. Press ctrl-c to stop."
  while kill -0 "${pids[0]}" 2>/dev/null; do sleep 1; done
else
  step "Done; stopping everything"
fi
