#!/usr/bin/env bash
# Starts a real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager) on loopback for the end-to-end tests, and stays in
# the foreground supervising it until told to stop.
#
#   up.sh DIR [--watch-pid PID]
#
# DIR is re-initialised on every start and holds the state: etcd data, keys
# and certificates, one log per component, `kubeconfig` for an admin in
# `system:masters`, and `ready`, created once the cluster answers. The line
# `control plane ready: KUBECONFIG=DIR/kubeconfig` goes to stdout at the same
# moment; everything else goes to stderr.
#
# Everything stops when this script gets SIGTERM or SIGINT, when a component
# dies (then the exit status is non-zero), or, with --watch-pid, once PID is
# gone: the test harness passes its own PID so a crashed run leaves nothing
# behind. Callers should send SIGTERM: a shell script's background jobs start
# with SIGINT ignored, and no trap can undo that. The components share this
# script's process group, so a caller that starts it as a group leader can
# also kill the group if this script is SIGKILLed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ready_timeout=90
start_attempts=3

die() { echo "up.sh: $*" >&2; exit 1; }

usage() { die "usage: up.sh DIR [--watch-pid PID]"; }

[[ $# -ge 1 && $1 != -* ]] || usage
dir="$1"
shift
watch_pid=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --watch-pid) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage; watch_pid="$2"; shift 2 ;;
    *) usage ;;
  esac
done
if [[ -n $watch_pid ]] && ! kill -0 "$watch_pid" 2>/dev/null; then
  die "--watch-pid $watch_pid: no such process"
fi

for tool in openssl kubectl; do
  command -v "$tool" >/dev/null || die "$tool is needed to start the control plane"
done

bin="$(bash "$here/build.sh")" || die "building the control plane failed"
for b in etcd kube-apiserver kube-controller-manager; do
  [[ -x $bin/$b ]] || die "build.sh printed '$bin', which has no $b"
done

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
rm -rf "$dir/etcd" "$dir/pki" "$dir/ready" "$dir/kubeconfig"
mkdir -p "$dir/pki"
pki="$dir/pki"

# --- Identities -------------------------------------------------------------

# Our own CA and serving certificate rather than the apiserver's self-signed
# one: clients verify the server against a CA we know, and the certificate
# carries IP SAN 127.0.0.1, which rustls insists on when the URL is an IP.
openssl_quiet() { local out; out="$(openssl "$@" 2>&1)" || die "openssl $1 failed: $out"; }
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=terrakio-test-ca" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$pki/ca.key" -out "$pki/ca.crt"
openssl_quiet req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
  -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr"
openssl_quiet x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
  -CAcreateserial -days 7 -out "$pki/apiserver.crt" -extfile <(printf '%s\n' \
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc" \
    "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment")

# One RSA key pair signs and verifies service-account tokens (TokenRequest).
openssl_quiet genrsa -out "$pki/sa.key" 2048
openssl_quiet rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

# A static bearer token is the shortest admin identity to hand to kubectl,
# kube::Client and the controller manager alike.
token="$(openssl rand -hex 24)"
echo "$token,terrakio-test-admin,terrakio-test-admin,system:masters" >"$pki/tokens.csv"
chmod 600 "$pki"/*.key "$pki/tokens.csv"

write_kubeconfig() { # PATH PORT
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$2
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
EOF
  chmod 600 "$1"
}

# --- Processes --------------------------------------------------------------

declare -A pids=()
order=()

start() { # NAME ARGS...
  local name="$1"
  shift
  "$bin/$name" "$@" >"$dir/$name.log" 2>&1 &
  pids[$name]=$!
  order+=("$name")
}

stop_one() { # NAME
  local pid="${pids[$1]}"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# In reverse start order: an apiserver whose etcd is already gone hangs in
# its shutdown instead of exiting at once.
stop_all() {
  local i
  for ((i = ${#order[@]} - 1; i >= 0; i--)); do stop_one "${order[i]}"; done
  pids=()
  order=()
}

on_exit() {
  local rc=$?
  # A second signal must not cut the cleanup short and strand a component.
  trap - EXIT
  trap '' INT TERM
  rm -f "$dir/ready"
  stop_all
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tail_log() { echo "--- last lines of $dir/$1.log ---" >&2; tail -n 25 "$dir/$1.log" >&2 || true; }

# Prints the name of a component that has exited, if any.
dead_component() {
  local name
  for name in "${!pids[@]}"; do
    kill -0 "${pids[$name]}" 2>/dev/null || { echo "$name"; return 0; }
  done
  return 1
}

# Prints a loopback port nobody listens on and not in $used_ports. Below the
# kernel's ephemeral range (32768 and up), so outgoing connections do not take
# it between probe and bind.
used_ports=" "
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    [[ $used_ports == *" $port "* ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
    echo "$port"
    return 0
  done
}

# Polls CHECK... until it succeeds, watching the components meanwhile.
# Returns 2 when one died because another process holds its port, 1 when one
# died otherwise or the attempt's deadline passed.
await() { # WHAT CHECK...
  local what="$1" name
  shift
  until "$@" >/dev/null 2>&1; do
    if name="$(dead_component)"; then
      if grep -q "address already in use" "$dir/$name.log"; then
        echo "up.sh: $name lost a port to another process; retrying with new ports" >&2
        return 2
      fi
      echo "up.sh: $name exited during start-up" >&2
      tail_log "$name"
      return 1
    fi
    if [[ $SECONDS -ge $deadline ]]; then
      echo "up.sh: timed out after ${ready_timeout}s waiting for $what" >&2
      for name in "${order[@]}"; do tail_log "$name"; done
      return 1
    fi
    sleep 0.2
  done
}

# Probing cannot reserve a port, so a concurrent run may take one first; such
# a start is retried from scratch with new ports.
start_attempt() {
  local etcd_port peer_port api_port kcm_kubeconfig="$dir/kube-controller-manager.kubeconfig"
  etcd_port="$(free_port)"; used_ports+="$etcd_port "
  peer_port="$(free_port)"; used_ports+="$peer_port "
  api_port="$(free_port)"; used_ports+="$api_port "
  deadline=$((SECONDS + ready_timeout))
  rm -rf "$dir/etcd"

  start etcd --name=test --data-dir="$dir/etcd" --unsafe-no-fsync \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="test=http://127.0.0.1:$peer_port"
  # Our etcd's own word that it serves, not merely an open port: after a port
  # collision that port may belong to another run's etcd.
  await "etcd serving" grep -q "serving client traffic" "$dir/etcd.log" || return

  # The advertise address is explicit, else the apiserver looks for the host's
  # default interface and fails without a network. No endpoint reconciler:
  # Endpoints may not hold a loopback address, so it would only log a
  # rejected update every ten seconds.
  start kube-apiserver --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --token-auth-file="$pki/tokens.csv" --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --endpoint-reconciler-type=none
  write_kubeconfig "$kcm_kubeconfig" "$api_port"
  await "kube-apiserver ready" kubectl --kubeconfig "$kcm_kubeconfig" get --raw /readyz || return

  # Owner references, namespace deletion, service accounts and their tokens,
  # and the rules of aggregated ClusterRoles such as `view` and `edit`, which
  # are empty until their controller fills them.
  local kcm_controllers=garbage-collector-controller,namespace-controller
  kcm_controllers+=,serviceaccount-controller,serviceaccount-token-controller
  kcm_controllers+=,clusterrole-aggregation-controller
  # Started only now: it gives up when the apiserver is not healthy within
  # seconds of its own start. Port 0 turns off its HTTPS endpoint, which
  # nothing here uses and which would otherwise claim a fixed port.
  start kube-controller-manager --kubeconfig="$kcm_kubeconfig" \
    --leader-elect=false --secure-port=0 \
    --controllers="$kcm_controllers" \
    --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key"
  # The serviceaccount controller creating `default/default` proves the
  # controller manager is connected and running its controllers.
  await "kube-controller-manager working" \
    kubectl --kubeconfig "$kcm_kubeconfig" -n default get serviceaccount default || return

  write_kubeconfig "$dir/kubeconfig" "$api_port"
}

started=$SECONDS
for attempt in $(seq "$start_attempts"); do
  rc=0
  start_attempt || rc=$?
  [[ $rc -eq 2 ]] || break
  stop_all
done
[[ $rc -eq 0 ]] || die "the control plane did not start (logs in $dir)"

kubectl --kubeconfig "$dir/kubeconfig" get namespaces >/dev/null ||
  die "kubectl cannot list namespaces with $dir/kubeconfig"
touch "$dir/ready"
echo "up.sh: ready after $((SECONDS - started))s (attempt $attempt)" >&2
echo "control plane ready: KUBECONFIG=$dir/kubeconfig"

# --- Supervision ------------------------------------------------------------

while :; do
  if name="$(dead_component)"; then
    echo "up.sh: $name exited; stopping the control plane" >&2
    tail_log "$name"
    exit 1
  fi
  if [[ -n $watch_pid ]] && ! kill -0 "$watch_pid" 2>/dev/null; then
    echo "up.sh: process $watch_pid is gone; stopping the control plane" >&2
    exit 0
  fi
  # Sleeping in the background lets a signal's trap run at once.
  sleep 1 &
  wait $! || true
done
