#!/usr/bin/env bash
# CXX_LINKER_LAUNCHER of the Python module: runs the link command with the static
# libprotobuf-lite.a (in libramjet.a's link interface) replaced, in place, by the shared
# libprotobuf-lite.so next to it. Debian's archive uses initial-exec TLS, which cannot go into a
# shared object; replacing it in place keeps the order --as-needed relies on.
args=()
for a in "$@"; do
  case "$a" in
    */libprotobuf-lite.a) args+=("${a%.a}.so") ;;
    *) args+=("$a") ;;
  esac
done
exec "${args[@]}"
