#!/usr/bin/env bash
# Install libkeel into a scratch prefix and build the example service against
# it with nothing but pkg-config: what a user embedding keel does.
#   tests/install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
prefix=$(mktemp -d /tmp/keel-install-XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
pc_dir=$(dirname "$(find "$prefix" -name keel.pc | head -1)")
export PKG_CONFIG_PATH=$pc_dir
test "$(pkg-config --modversion keel)" != ""
libdir=$(pkg-config --variable=libdir keel)
cc -std=c11 -Wall -Wextra -Werror "$source/examples/service/greeter.c" \
   -o "$prefix/greeter" $(pkg-config --cflags --libs keel) -Wl,-rpath,"$libdir"
# It runs: without arguments it prints its usage and exits 2.
set +e
"$prefix/greeter" >/dev/null 2>&1
status=$?
set -e
test $status -eq 2
echo "installed, found with pkg-config, example built, linked and run"
