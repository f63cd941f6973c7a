#!/usr/bin/env bash
# End-to-end tests of the Docker deployment (issue 7): builds the image with
# scripts/docker-build.sh, then drives real containers through published ports on 127.0.0.1:
#   - the README's `docker run -p 6333:6333 -v $(pwd)/qdrant_storage:/qdrant/storage:z` form on a
#     host folder that does not exist yet: create, upsert, search, `docker stop` (clean exit 0
#     within the grace period), a NEW container on the same folder still has the data;
#   - `--user 1000:1000` on a folder owned by that user (files on the host owned by it);
#   - docker-compose.yml (a temporary copy on another host port) with `docker-compose up -d` /
#     `down` / `up -d`, and the same with `docker compose` when the v2 plugin exists;
#   - docker/docker-compose.cluster.yml: three nodes on the compose network, a replicated
#     collection, `stop` of a node while writes go on, `start` and catch-up;
#   - configuration by environment (QDRANT__SERVICE__API_KEY, QDRANT__SERVICE__HTTP_PORT) and by
#     a config file mounted at /qdrant/config/config.yaml;
#   - image metadata (HEALTHCHECK, STOPSIGNAL, ports, workdir) and size (fails above 60 MB).
#
# Skips (exit 0) with a message when no Docker engine is reachable. Cleans up the containers,
# compose projects and folders it created. Prints `docker: N passed, M failed` last.
#
# Environment:
#   DOCKER_TEST_NO_BUILD=1   test the existing qdrant/qdrant:latest instead of building it
#   DOCKER_TEST_KEEP=1       keep the temporary folders (containers are removed regardless)
#   DOCKER_TEST_MAX_MB=60    image size limit in MB (10^6 bytes)
set -uo pipefail
cd "$(dirname "$0")/../.."

IMAGE=qdrant/qdrant:latest
MAX_MB=${DOCKER_TEST_MAX_MB:-60}
RUN_ID="qdtest$$"
LABEL="qdrant-docker-test=$RUN_ID"
STOP_GRACE=20

passed=0
failed=0
failures=()

# ---------------------------------------------------------------------------------------------
# Skip when there is no engine.
if ! command -v docker >/dev/null 2>&1; then
  echo "docker: SKIPPED - no docker command on this machine (tests/docker/test_docker.sh needs a Docker engine)"
  exit 0
fi
if ! docker_err=$(timeout 20 docker info 2>&1 >/dev/null); then
  echo "docker: SKIPPED - no Docker engine reachable: $(tail -n 1 <<<"$docker_err")"
  exit 0
fi
for tool in curl timeout; do
  command -v "$tool" >/dev/null || { echo "docker: FAILED - $tool is required"; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/qdrant-docker-test.XXXXXX")
chmod 0755 "$WORK"
COMPOSE_PROJECTS=()   # "command|dir|project" of every compose project started

cleanup() {
  local entry cmd dir project ids
  for entry in "${COMPOSE_PROJECTS[@]+"${COMPOSE_PROJECTS[@]}"}"; do
    IFS='|' read -r cmd dir project <<<"$entry"
    (cd "$dir" && timeout 60 $cmd -p "$project" down -t 5 >/dev/null 2>&1)
  done
  ids=$(docker ps -aq --filter "label=$LABEL" 2>/dev/null)
  [ -n "$ids" ] && timeout 60 docker rm -f $ids >/dev/null 2>&1
  if [ -z "${DOCKER_TEST_KEEP:-}" ]; then
    rm -rf "$WORK" 2>/dev/null || echo "docker: note: could not remove $WORK (files written by the container as root)"
  else
    echo "docker: kept $WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Helpers.
check() { # check NAME COMMAND...  — runs COMMAND, counts it
  local name=$1; shift
  if "$@"; then
    passed=$((passed + 1)); echo "  ok   $name"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "  FAIL $name"
  fi
}

summary() {
  echo
  if [ "$failed" -gt 0 ]; then
    printf 'failed checks:\n'; printf '  - %s\n' "${failures[@]}"
  fi
  echo "docker: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

# A TCP port nothing uses (per /proc/net/tcp{,6}), drawn below the kernel's ephemeral range so
# that an outgoing connection cannot take it between this check and docker's bind; docker run
# and compose up retry on a clash anyway.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "${EPHEMERAL_LOW:-0}" -gt 12000 ] 2>/dev/null || EPHEMERAL_LOW=32768
# free_port VAR: sets VAR (not a subshell, so ports drawn for one file stay distinct; its own
# locals are prefixed so that they never shadow the caller's VAR).
free_port() {
  local _fp_port _fp_hex
  for _ in $(seq 1 100); do
    _fp_port=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
    _fp_hex=$(printf ':%04X ' "$_fp_port")
    case " ${TAKEN_PORTS:-} " in *" $_fp_port "*) continue ;; esac
    if ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '{print $2}' | grep -q "${_fp_hex% }$"; then
      TAKEN_PORTS="${TAKEN_PORTS:-} $_fp_port"
      printf -v "$1" '%s' "$_fp_port"; return 0
    fi
  done
  return 1
}

# compose_up CMD DIR PROJECT RENDER: RENDER picks free host ports and writes DIR/docker-compose.yml;
# `up -d` is retried with fresh ports (after `down`) when a port was taken in the meantime.
compose_up() {
  local cmd=$1 dir=$2 project=$3 render=$4 tries rc
  for tries in 1 2 3; do
    "$render" || return 1
    rc=0
    (cd "$dir" && timeout 180 $cmd -p "$project" up -d >"$dir/up.log" 2>&1) || rc=$?
    [ "$rc" = 0 ] && return 0
    grep -qi "address already in use\|port is already allocated" "$dir/up.log" || break
    echo "    (a host port was taken meanwhile; retrying with fresh ports)"
    (cd "$dir" && timeout 120 $cmd -p "$project" down -t "$STOP_GRACE" >/dev/null 2>&1)
  done
  return "$rc"
}

BODY="$WORK/body"
# http METHOD URL [JSON] [extra curl args...]: body in $BODY, prints the status code.
http() {
  local method=$1 url=$2 data=${3:-}; shift 3 2>/dev/null || shift $#
  local args=(-s -o "$BODY" -w '%{http_code}' --max-time 20 -X "$method" "$@")
  [ -n "$data" ] && args+=(-H 'content-type: application/json' --data "$data")
  curl "${args[@]}" "$url" 2>/dev/null || echo "000"
}

# wait_ready PORT CONTAINER_OR_EMPTY [SECONDS]: /readyz answers 200.
wait_ready() {
  local port=$1 container=${2:-} limit=${3:-60} start=$SECONDS
  while [ $((SECONDS - start)) -lt "$limit" ]; do
    [ "$(http GET "http://127.0.0.1:$port/readyz")" = 200 ] && return 0
    if [ -n "$container" ] && [ "$(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null)" != true ]; then
      echo "    container $container is not running:"; docker logs --tail 20 "$container" 2>&1 | sed 's/^/    | /'
      return 1
    fi
    sleep 0.3
  done
  echo "    port $port not ready after ${limit}s"
  [ -n "$container" ] && docker logs --tail 20 "$container" 2>&1 | sed 's/^/    | /'
  return 1
}

# run_container NAME PORT_VAR [docker run args...]: starts the image detached with the label,
# publishing 127.0.0.1:<free port>:6333 (or the container port in CONTAINER_PORT); sets PORT_VAR.
run_container() {
  local name=$1 var=$2; shift 2
  local port tries
  for tries in 1 2 3; do
    free_port port || return 1
    if timeout 60 docker run -d --name "$name" --label "$LABEL" \
        -p "127.0.0.1:$port:${CONTAINER_PORT:-6333}" "$@" >/dev/null 2>"$WORK/run.err"; then
      printf -v "$var" '%s' "$port"; return 0
    fi
    docker rm -f "$name" >/dev/null 2>&1
    grep -qi "address already in use\|port is already allocated" "$WORK/run.err" || break
  done
  sed 's/^/    | /' "$WORK/run.err"
  return 1
}

# The collection round trip used everywhere: create, upsert (wait=true), search.
create_collection() { # PORT [curl args]
  local port=$1; shift
  [ "$(http PUT "http://127.0.0.1:$port/collections/docker_test" \
      '{"vectors":{"size":4,"distance":"Dot"}}' "$@")" = 200 ] || { cat "$BODY"; echo; return 1; }
}
upsert_points() { # PORT [curl args]
  local port=$1; shift
  [ "$(http PUT "http://127.0.0.1:$port/collections/docker_test/points?wait=true" \
      '{"points":[{"id":1,"vector":[1,0,0,0],"payload":{"city":"Berlin"}},
                  {"id":2,"vector":[0,1,0,0],"payload":{"city":"London"}},
                  {"id":3,"vector":[0,0,1,0],"payload":{"city":"Moscow"}}]}' "$@")" = 200 ] \
    || { cat "$BODY"; echo; return 1; }
}
search_finds_point_1() { # PORT [curl args]
  local port=$1; shift
  [ "$(http POST "http://127.0.0.1:$port/collections/docker_test/points/search" \
      '{"vector":[0.9,0.1,0,0],"limit":3}' "$@")" = 200 ] || { cat "$BODY"; echo; return 1; }
  local first
  first=$(grep -o '"id":[0-9]*' "$BODY" | head -n 1)
  [ "$first" = '"id":1' ] || { echo "    search answered: $(head -c 300 "$BODY")"; return 1; }
}
point_1_is_there() { # PORT [curl args]
  local port=$1; shift
  [ "$(http GET "http://127.0.0.1:$port/collections/docker_test/points/1" "" "$@")" = 200 ] \
    && grep -q '"city":"Berlin"' "$BODY" || { echo "    got: $(head -c 300 "$BODY")"; return 1; }
}
round_trip() { # PORT: create + upsert + search
  create_collection "$1" && upsert_points "$1" && search_finds_point_1 "$1"
}
data_survived() { # PORT
  point_1_is_there "$1" && search_finds_point_1 "$1"
}

# stop_cleanly CONTAINER: `docker stop` returns within the grace period and the exit code is 0
# (137 would mean SIGKILL after the grace period).
stop_cleanly() {
  local c=$1 start code
  start=$SECONDS
  timeout $((STOP_GRACE + 30)) docker stop -t "$STOP_GRACE" "$c" >/dev/null || return 1
  local took=$((SECONDS - start))
  code=$(docker inspect -f '{{.State.ExitCode}}' "$c")
  echo "    stopped in ${took}s, exit code $code"
  [ "$code" = 0 ] && [ "$took" -lt "$STOP_GRACE" ]
}

wait_healthy() { # CONTAINER SECONDS
  local c=$1 limit=$2 start=$SECONDS status=""
  while [ $((SECONDS - start)) -lt "$limit" ]; do
    status=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$c" 2>/dev/null)
    [ "$status" = healthy ] && return 0
    sleep 1
  done
  echo "    health status: ${status:-none}"
  return 1
}

# ---------------------------------------------------------------------------------------------
echo "== image"
if [ -n "${DOCKER_TEST_NO_BUILD:-}" ]; then
  check "image $IMAGE exists (DOCKER_TEST_NO_BUILD)" docker image inspect "$IMAGE" >/dev/null
else
  build_ok() { timeout 3600 scripts/docker-build.sh 2>&1 | sed 's/^/    | /'; }
  check "scripts/docker-build.sh builds $IMAGE" build_ok
  if [ "$failed" -gt 0 ]; then
    echo "docker: the image did not build; not testing an older $IMAGE"
    summary; exit 1
  fi
fi
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "docker: no image $IMAGE; nothing else to test"
  summary; exit 1
fi
version=$(awk '/^\[/{sect=$0} sect=="[workspace.package]" && $1=="version" {gsub(/"/,"",$3); print $3; exit}' Cargo.toml)
check "version tag qdrant/qdrant:v$version is the same image" \
  test "$(docker image inspect -f '{{.Id}}' "$IMAGE")" = "$(docker image inspect -f '{{.Id}}' "qdrant/qdrant:v$version" 2>/dev/null)"

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
size_mb=$(awk -v s="$size" 'BEGIN{printf "%.1f", s/1e6}')
echo "    image size: $size_mb MB ($size bytes), limit $MAX_MB MB"
check "image size $size_mb MB <= $MAX_MB MB" test "$size" -le $((MAX_MB * 1000000))

meta() { docker image inspect -f "$1" "$IMAGE"; }
check "metadata: workdir /qdrant, entrypoint /qdrant/qdrant, runs as root by default" \
  test "$(meta '{{.Config.WorkingDir}} {{json .Config.Entrypoint}} user={{.Config.User}}')" = '/qdrant ["/qdrant/qdrant"] user='
check "metadata: STOPSIGNAL SIGTERM, EXPOSE 6333 6334" \
  test "$(meta '{{.Config.StopSignal}} {{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}')" = 'SIGTERM 6333/tcp 6334/tcp '
check "metadata: HEALTHCHECK runs \`qdrant healthcheck\` (no shell)" \
  test "$(meta '{{json .Config.Healthcheck.Test}}')" = '["CMD","/qdrant/qdrant","healthcheck"]'

# ---------------------------------------------------------------------------------------------
echo "== docker run -v <new folder>/qdrant_storage:/qdrant/storage:z (default user)"
mkdir -p "$WORK/run" && cd "$WORK/run"
check "host folder does not exist before the run" test ! -e "$WORK/run/qdrant_storage"
c1="$RUN_ID-a1"
check "container starts and is ready" \
  eval 'run_container "$c1" P1 -v "$(pwd)/qdrant_storage:/qdrant/storage:z" "$IMAGE" && wait_ready "$P1" "$c1"'
check "create collection, upsert, search through the published port" round_trip "$P1"
check "the container wrote its storage into the host folder" test -f "$WORK/run/qdrant_storage/storage.json"
check "docker exec ... qdrant healthcheck exits 0" timeout 30 docker exec "$c1" qdrant healthcheck
check "HEALTHCHECK reports healthy" wait_healthy "$c1" 45
check "docker stop: clean exit 0 within the ${STOP_GRACE}s grace period" stop_cleanly "$c1"
c2="$RUN_ID-a2"
check "a NEW container on the same folder is ready" \
  eval 'run_container "$c2" P2 -v "$(pwd)/qdrant_storage:/qdrant/storage:z" "$IMAGE" && wait_ready "$P2" "$c2"'
check "the data is there in the new container (point payload, search)" data_survived "$P2"
check "second container stops cleanly too" stop_cleanly "$c2"
cd - >/dev/null

# ---------------------------------------------------------------------------------------------
if [ "$(id -u)" = 0 ]; then uid_gid=1000:1000; else uid_gid="$(id -u):$(id -g)"; fi
echo "== docker run --user $uid_gid on a folder owned by that user"
mkdir -p "$WORK/user/qdrant_storage"
chown "$uid_gid" "$WORK/user/qdrant_storage"
c3="$RUN_ID-u1"
check "container as --user $uid_gid is ready" \
  eval 'run_container "$c3" P3 --user "$uid_gid" -v "$WORK/user/qdrant_storage:/qdrant/storage:z" "$IMAGE" && wait_ready "$P3" "$c3"'
check "create, upsert, search as --user $uid_gid" round_trip "$P3"
owned_by_user() {
  local bad
  bad=$(find "$WORK/user/qdrant_storage" -mindepth 1 ! -user "${uid_gid%%:*}" | head -n 3)
  [ -f "$WORK/user/qdrant_storage/storage.json" ] && [ -z "$bad" ] || { echo "    not owned by ${uid_gid%%:*}: $bad"; return 1; }
}
check "files on the host are owned by ${uid_gid%%:*}" owned_by_user
check "stops cleanly" stop_cleanly "$c3"
c4="$RUN_ID-u2"
check "a new --user $uid_gid container has the data" \
  eval 'run_container "$c4" P4 --user "$uid_gid" -v "$WORK/user/qdrant_storage:/qdrant/storage:z" "$IMAGE" && wait_ready "$P4" "$c4" && data_survived "$P4"'
c5="$RUN_ID-u3"
check "--user $uid_gid without any mount works (image dirs are writable)" \
  eval 'run_container "$c5" P5 --user "$uid_gid" "$IMAGE" && wait_ready "$P5" "$c5" && create_collection "$P5"'

# ---------------------------------------------------------------------------------------------
# Renders the repository's docker-compose.yml with only the host side of the ports changed (bound
# to 127.0.0.1) into $dir; sets $port and $gport (the caller's locals).
render_single_compose() {
  free_port port && free_port gport || return 1
  sed -e "s/\"6333:6333\"/\"127.0.0.1:$port:6333\"/" -e "s/\"6334:6334\"/\"127.0.0.1:$gport:6334\"/" \
    docker-compose.yml >"$dir/docker-compose.yml"
}
compose_round_trip() { # COMMAND (docker-compose | "docker compose") TAG
  local cmd=$1 tag=$2 dir="$WORK/compose-$2" project="${RUN_ID}$2" port gport
  mkdir -p "$dir"
  COMPOSE_PROJECTS+=("$cmd|$dir|$project")
  local rc=0
  compose_up "$cmd" "$dir" "$project" render_single_compose || rc=$?
  echo "== $cmd up -d (copy of docker-compose.yml on 127.0.0.1:$port)"
  check "[$tag] the copy differs from docker-compose.yml only in the port line" \
    test "$(diff docker-compose.yml "$dir/docker-compose.yml" | grep -c '^[<>]')" = 2
  check "[$tag] $cmd up -d" eval "[ $rc = 0 ] || { sed 's/^/    | /' '$dir/up.log'; false; }"
  check "[$tag] service ready, round trip through the published port" \
    eval 'wait_ready "$port" "" && round_trip "$port"'
  check "[$tag] ./qdrant_storage created next to the compose file" test -f "$dir/qdrant_storage/storage.json"
  check "[$tag] $cmd down" eval "(cd '$dir' && timeout 120 $cmd -p '$project' down -t $STOP_GRACE >/dev/null 2>&1)"
  check "[$tag] $cmd up -d again: the data is there" \
    eval "(cd '$dir' && timeout 120 $cmd -p '$project' up -d >/dev/null 2>&1) && wait_ready '$port' '' && data_survived '$port'"
  check "[$tag] $cmd down (final)" eval "(cd '$dir' && timeout 120 $cmd -p '$project' down -t $STOP_GRACE >/dev/null 2>&1)"
}

compose_tools=0
if command -v docker-compose >/dev/null 2>&1; then
  compose_round_trip docker-compose v1; compose_tools=$((compose_tools + 1))
else
  echo "== docker-compose not installed; skipping its round trip"
fi
if timeout 20 docker compose version >/dev/null 2>&1; then
  compose_round_trip "docker compose" v2; compose_tools=$((compose_tools + 1))
else
  echo "== docker compose (v2 plugin) not installed; skipping its round trip"
fi
check "at least one compose tool was tested" test "$compose_tools" -gt 0

# ---------------------------------------------------------------------------------------------
# The three-node cluster of docker/docker-compose.cluster.yml (a copy on free host ports): peers
# find each other by service name on the compose network; a replicated collection keeps
# answering while one node is stopped, and the node catches up after `start`; the same with a
# node cut off the network and reconnected.
json_field() { # FILE PYTHON-EXPR-ON-r: prints the value
  python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['result']; print($2)" "$1" 2>/dev/null
}
cluster_peers() { # PORT: number of peers /cluster lists
  [ "$(http GET "http://127.0.0.1:$1/cluster")" = 200 ] && json_field "$BODY" "len(r['peers'])"
}
cluster_count() { # PORT: exact point count of collection `replicated`
  [ "$(http POST "http://127.0.0.1:$1/collections/replicated/points/count" '{"exact":true}')" = 200 ] \
    && json_field "$BODY" "r['count']"
}
upsert_range() { # PORT FROM TO
  local pts
  pts=$(python3 -c "import json,sys; a,b=int(sys.argv[1]),int(sys.argv[2]); print(json.dumps({'points':[{'id':i,'vector':[i%7,1,2,3]} for i in range(a,b)]}))" "$2" "$3")
  [ "$(http PUT "http://127.0.0.1:$1/collections/replicated/points?wait=true" "$pts")" = 200 ] || { cat "$BODY"; echo; return 1; }
}
all_replicas_active() { # PORT
  [ "$(http GET "http://127.0.0.1:$1/collections/replicated/cluster")" = 200 ] \
    && [ "$(json_field "$BODY" "all(s['state']=='Active' for s in r['local_shards']+r['remote_shards'])")" = True ]
}
wait_until() { # SECONDS COMMAND...
  local limit=$1 start=$SECONDS; shift
  while [ $((SECONDS - start)) -lt "$limit" ]; do "$@" && return 0; sleep 0.5; done
  return 1
}
# Renders docker/docker-compose.cluster.yml on three free host ports into $dir; sets $p1 $p2 $p3.
render_cluster_compose() {
  free_port p1 && free_port p2 && free_port p3 || return 1
  sed -e "s/\"6333:6333\"/\"127.0.0.1:$p1:6333\"/" -e "s/\"6343:6333\"/\"127.0.0.1:$p2:6333\"/" \
      -e "s/\"6353:6333\"/\"127.0.0.1:$p3:6333\"/" docker/docker-compose.cluster.yml >"$dir/docker-compose.yml"
}
cluster_compose() { # COMMAND
  local cmd=$1 dir="$WORK/cluster" project="${RUN_ID}cl" p1 p2 p3
  mkdir -p "$dir"
  COMPOSE_PROJECTS+=("$cmd|$dir|$project")
  local rc=0
  compose_up "$cmd" "$dir" "$project" render_cluster_compose || rc=$?
  echo "== cluster: $cmd up -d (three nodes on 127.0.0.1:$p1,$p2,$p3)"
  check "[cluster] $cmd up -d" eval "[ $rc = 0 ] || { sed 's/^/    | /' '$dir/up.log'; false; }"
  check "[cluster] three nodes ready" eval 'wait_ready "$p1" "" && wait_ready "$p2" "" && wait_ready "$p3" ""'
  check "[cluster] every node sees three peers" \
    wait_until 60 eval '[ "$(cluster_peers $p1)" = 3 ] && [ "$(cluster_peers $p2)" = 3 ] && [ "$(cluster_peers $p3)" = 3 ]'
  check "[cluster] replicated collection created through node 1" \
    test "$(http PUT "http://127.0.0.1:$p1/collections/replicated" \
      '{"vectors":{"size":4,"distance":"Dot"},"shard_number":3,"replication_factor":2}')" = 200
  check "[cluster] 300 points written through node 2, counted through node 3" \
    eval 'upsert_range "$p2" 0 300 && [ "$(cluster_count "$p3")" = 300 ]'
  check "[cluster] $cmd stop qdrant_node3" \
    eval "(cd '$dir' && timeout 60 $cmd -p '$project' stop -t $STOP_GRACE qdrant_node3 >/dev/null 2>&1)"
  check "[cluster] writes and reads go on with node 3 stopped" \
    eval 'upsert_range "$p1" 300 400 && [ "$(cluster_count "$p2")" = 400 ] && [ "$(cluster_count "$p1")" = 400 ]'
  check "[cluster] $cmd start qdrant_node3: it catches up" \
    eval "(cd '$dir' && timeout 60 $cmd -p '$project' start qdrant_node3 >/dev/null 2>&1) && wait_ready '$p3' '' \
          && wait_until 90 all_replicas_active '$p1' && [ \"\$(cluster_count '$p3')\" = 400 ]"
  # A network partition: node 3 is cut off the compose network (its process keeps running),
  # the majority goes on; once reconnected, node 3's replicas recover and it answers everything.
  local cid net
  cid=$(cd "$dir" && $cmd -p "$project" ps -q qdrant_node3)
  net=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "$cid")
  check "[cluster] node 3 cut off the network ($net)" docker network disconnect "$net" "$cid"
  check "[cluster] writes and reads go on through the majority during the partition" \
    eval 'upsert_range "$p1" 400 500 && [ "$(cluster_count "$p2")" = 500 ]'
  check "[cluster] node 3 reconnected: its replicas recover and it answers every point" \
    eval "docker network connect --alias qdrant_node3 '$net' '$cid' \
          && wait_until 90 all_replicas_active '$p1' && wait_until 60 eval '[ \"\$(cluster_count $p3)\" = 500 ]'"
  check "[cluster] $cmd down" eval "(cd '$dir' && timeout 120 $cmd -p '$project' down -t $STOP_GRACE >/dev/null 2>&1)"
}
if command -v docker-compose >/dev/null 2>&1; then
  cluster_compose docker-compose
elif timeout 20 docker compose version >/dev/null 2>&1; then
  cluster_compose "docker compose"
fi

# ---------------------------------------------------------------------------------------------
echo "== configuration through environment variables"
c6="$RUN_ID-e1"
check "QDRANT__SERVICE__API_KEY + QDRANT__SERVICE__HTTP_PORT=7000: ready on 7000" \
  eval 'CONTAINER_PORT=7000 run_container "$c6" P6 -e QDRANT__SERVICE__API_KEY=env-secret -e QDRANT__SERVICE__HTTP_PORT=7000 "$IMAGE" && wait_ready "$P6" "$c6"'
check "no api-key header -> 401" test "$(http GET "http://127.0.0.1:$P6/collections")" = 401
check "wrong api-key -> 401" test "$(http GET "http://127.0.0.1:$P6/collections" "" -H 'api-key: nope')" = 401
check "right api-key -> 200" test "$(http GET "http://127.0.0.1:$P6/collections" "" -H 'api-key: env-secret')" = 200
check "healthcheck follows the port from the environment" timeout 30 docker exec "$c6" qdrant healthcheck

echo "== configuration through a file mounted at /qdrant/config/config.yaml"
mkdir -p "$WORK/conf"
cat >"$WORK/conf/config.yaml" <<'YAML'
log_level: DEBUG
storage:
  backend: sqlite
service:
  api_key: file-secret
YAML
chmod 0644 "$WORK/conf/config.yaml"
c7="$RUN_ID-f1"
check "container with the mounted config file is ready" \
  eval 'run_container "$c7" P7 -v "$WORK/conf/config.yaml:/qdrant/config/config.yaml:ro,z" -v "$WORK/conf/storage:/qdrant/storage:z" "$IMAGE" && wait_ready "$P7" "$c7"'
check "api_key from the file: 401 without, 200 with" \
  eval 'test "$(http GET "http://127.0.0.1:$P7/collections")" = 401 && test "$(http GET "http://127.0.0.1:$P7/collections" "" -H "api-key: file-secret")" = 200'
check "backend from the file (sqlite) is used" \
  eval 'create_collection "$P7" -H "api-key: file-secret" && grep -q sqlite "$WORK/conf/storage/storage.json"'
check "environment overrides the file (QDRANT__SERVICE__API_KEY)" \
  eval 'run_container "$RUN_ID-f2" P8 -e QDRANT__SERVICE__API_KEY=env-wins -v "$WORK/conf/config.yaml:/qdrant/config/config.yaml:ro,z" "$IMAGE" && wait_ready "$P8" "$RUN_ID-f2" && test "$(http GET "http://127.0.0.1:$P8/collections" "" -H "api-key: env-wins")" = 200'

summary
