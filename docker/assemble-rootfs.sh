#!/usr/bin/env bash
# Assembles the root filesystem of the qdrant image from a built binary, using only local files:
#
#   docker/assemble-rootfs.sh BINARY CONFIG_YAML OUT_DIR
#
# OUT_DIR receives (and is emptied first):
#   /qdrant/qdrant                 the stripped binary (also the ENTRYPOINT)
#   /qdrant/config/config.yaml     the default config (storage ./storage, snapshots ./snapshots)
#   /qdrant/storage, /qdrant/snapshots   mode 0777, so any --user can write them when nothing is
#                                  mounted there (and named volumes copy that mode)
#   the shared libraries the binary needs, found with ldd (librocksdb and its compression libs,
#   libstdc++, glibc and the dynamic loader), copied to the paths the loader searches
#   /etc/passwd, /etc/group, /etc/nsswitch.conf (minimal), /tmp (mode 1777)
#
# Nothing else: no shell, no package manager. Both build paths use this script: scripts/docker-build.sh
# on the host (no registry needed) and the builder stage of the repository's Dockerfile.
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: $0 BINARY CONFIG_YAML OUT_DIR" >&2
  exit 2
fi
bin=$1 config=$2 out=$3
[ -x "$bin" ] || { echo "assemble-rootfs: $bin is not an executable" >&2; exit 1; }
[ -f "$config" ] || { echo "assemble-rootfs: $config not found" >&2; exit 1; }
command -v ldd >/dev/null || { echo "assemble-rootfs: ldd not found" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"/qdrant/config "$out"/qdrant/storage "$out"/qdrant/snapshots "$out"/etc "$out"/tmp
chmod 0755 "$out" "$out"/qdrant "$out"/qdrant/config "$out"/etc
chmod 0777 "$out"/qdrant/storage "$out"/qdrant/snapshots
chmod 1777 "$out"/tmp

install -m 0755 "$bin" "$out"/qdrant/qdrant
if command -v strip >/dev/null; then strip "$out"/qdrant/qdrant; fi
install -m 0644 "$config" "$out"/qdrant/config/config.yaml

# Shared libraries, each copied (symlinks resolved) to the path ldd reports, which is where the
# loader finds it again inside the image (its built-in search path, no ld.so.cache needed).
# `ldd` lines look like "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or
# "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
ldd_out=$(ldd "$bin") || { echo "assemble-rootfs: ldd $bin failed (static binary?)" >&2; ldd_out=""; }
if grep -q "not found" <<<"$ldd_out"; then
  echo "assemble-rootfs: missing libraries:" >&2
  grep "not found" <<<"$ldd_out" >&2
  exit 1
fi
libs=$(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$ldd_out" | sort -u)
for lib in $libs; do
  mkdir -p "$out$(dirname "$lib")"
  cp -L "$lib" "$out$lib"
  chmod 0755 "$out$lib"
done

cat >"$out"/etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$out"/etc/group <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
# glibc name resolution (Docker supplies /etc/hosts and /etc/resolv.conf at run time).
cat >"$out"/etc/nsswitch.conf <<'NSS'
passwd: files
group:  files
hosts:  files dns
NSS
chmod 0644 "$out"/etc/passwd "$out"/etc/group "$out"/etc/nsswitch.conf

echo "assemble-rootfs: $(du -sh "$out" | cut -f1) in $out ($(wc -w <<<"$libs") shared libraries)"
