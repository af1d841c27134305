# Shared settings and helpers for tests/cluster/{up,down,kubectl}.
# Sourced, not executed. Expects KCP_SRC (this directory) to be set.

KCP_TOP="$(git -C "$KCP_SRC" rev-parse --show-toplevel 2>/dev/null || (cd "$KCP_SRC/../.." && pwd))"

# Everything generated lives under <repo>/target/testcluster (override: KCP_HOME).
KCP_HOME="${KCP_HOME:-$KCP_TOP/target/testcluster}"
KCP_BIN_DIR="$KCP_HOME/bin"
KCP_BIN="$KCP_BIN_DIR/kcp"
KCP_RUN="$KCP_HOME/run"
KCP_PKI="$KCP_RUN/pki"
KCP_KUBECONFIG="$KCP_HOME/kubeconfig"

KCP_APISERVER_PORT="${KCP_APISERVER_PORT:-16443}"
KCP_ETCD_PORT="${KCP_ETCD_PORT:-12379}"
KCP_ETCD_PEER_PORT="${KCP_ETCD_PEER_PORT:-12380}"

# Start order; down stops in reverse.
KCP_COMPONENTS=(etcd kube-apiserver kube-controller-manager)

kcp_log() { printf '[kcp] %s\n' "$*" >&2; }
kcp_die() { printf '[kcp] ERROR: %s\n' "$*" >&2; exit 1; }

# The Kubernetes version, read from the single place it is pinned: go.mod.
kcp_k8s_version() {
  awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ { print $2; exit }' "$KCP_SRC/go.mod"
}

# Serialise up/down (e.g. several test binaries calling up at once).
kcp_lock() {
  mkdir -p "$KCP_HOME"
  exec 9>"$KCP_HOME/.lock"
  if ! flock -n 9; then
    kcp_log "waiting for another tests/cluster/up or down to finish"
    flock 9
  fi
}

# True if pid is a live (non-zombie) process.
kcp_alive() {
  local state
  state="$(awk '/^State:/ { print $2; exit }' "/proc/$1/status" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# pid of a component if its pid file names a live process running our binary.
kcp_pid() {
  local f="$KCP_RUN/$1.pid" pid exe
  [[ -f "$f" ]] || return 1
  pid="$(<"$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kcp_alive "$pid" || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
  # After a rebuild the old inode shows up as "<path> (deleted)".
  [[ "$exe" == "$KCP_BIN" || "$exe" == "$KCP_BIN (deleted)" ]] || return 1
  printf '%s\n' "$pid"
}

# Stop all components: SIGTERM, then SIGKILL after $1 seconds. Removes pid files.
kcp_stop_all() {
  local grace="${1:-10}" c pid pids=() i
  for ((i = ${#KCP_COMPONENTS[@]} - 1; i >= 0; i--)); do
    c="${KCP_COMPONENTS[$i]}"
    if pid="$(kcp_pid "$c")"; then
      kcp_log "stopping $c (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + grace))
  for pid in "${pids[@]}"; do
    while kcp_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if kcp_alive "$pid"; then
      kcp_log "pid $pid did not exit after ${grace}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while kcp_alive "$pid"; do sleep 0.1; done
    fi
  done
  for c in "${KCP_COMPONENTS[@]}"; do rm -f "$KCP_RUN/$c.pid"; done
  ((${#pids[@]} > 0))
}
