#!/usr/bin/env bash
# Cross-builds edgecap_runner for 64-bit ARM Linux (glibc) with Debian's aarch64-linux-gnu-g++,
# taking each runtime from its aarch64 PyPI wheel. Prints the binary's path on the last line.
#
#   runners/edgecap_runner/build_linux_aarch64.sh [executorch] [onnxruntime]
#
# Default: executorch, plus onnxruntime when ONNXRUNTIME_INCLUDE_DIR is set. The executorch wheel
# carries headers and libraries. The onnxruntime wheel carries libonnxruntime.so but no headers,
# so onnxruntime needs ONNXRUNTIME_INCLUDE_DIR: a folder holding onnxruntime_c_api.h (from an
# ONNX Runtime release archive, its Android AAR's headers/, or the source tree's
# include/onnxruntime/core/session). LiteRT cannot be built this way (README.md says why).
#
# Environment: EDGECAP_RUNNER_CACHE (default <repo>/.cache/edgecap_runner), PYTHON (for pip;
# default <repo>/.venv/bin/python), ORT_VERSION (1.31.1), ET_VERSION (1.5.1; match the executorch
# that exports the .pte files).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${EDGECAP_RUNNER_CACHE:-$repo/.cache/edgecap_runner}
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=python3
ort_version=${ORT_VERSION:-1.31.1}
et_version=${ET_VERSION:-1.5.1}

runtimes=("$@")
if [ ${#runtimes[@]} -eq 0 ]; then
  runtimes=(executorch)
  if [ -n "${ONNXRUNTIME_INCLUDE_DIR:-}" ]; then
    runtimes+=(onnxruntime)
  else
    echo "skipping onnxruntime: set ONNXRUNTIME_INCLUDE_DIR to a folder with onnxruntime_c_api.h" >&2
  fi
fi

command -v aarch64-linux-gnu-g++ >/dev/null || { echo "need aarch64-linux-gnu-g++ (apt-get install g++-aarch64-linux-gnu)" >&2; exit 1; }
command -v cmake >/dev/null || { echo "need cmake" >&2; exit 1; }
mkdir -p "$cache/wheels"
[ -f "$cache/.gitignore" ] || echo '*' > "$cache/.gitignore"  # keep downloads out of git

# Downloads (once) the aarch64 wheel of $1==$2 and unpacks it into $3.
unpack_wheel() {
  local name=$1 version=$2 dest=$3 wheel
  [ -d "$dest" ] && return
  wheel=$(ls "$cache/wheels/${name}-${version}-"*aarch64*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
      "${name}==${version}" -d "$cache/wheels" >&2
    wheel=$(ls "$cache/wheels/${name}-${version}-"*aarch64*.whl | head -n1)
  fi
  "$python" -m zipfile -e "$wheel" "$dest.tmp" && mv "$dest.tmp" "$dest"
}

cmake_args=(-DCMAKE_TOOLCHAIN_FILE="$here/cmake/aarch64-linux-gnu.cmake" -DCMAKE_BUILD_TYPE=Release)
for runtime in "${runtimes[@]}"; do
  case $runtime in
    executorch)
      unpack_wheel executorch "$et_version" "$cache/executorch-$et_version-aarch64"
      cmake_args+=(-DEDGECAP_WITH_EXECUTORCH=ON -DEXECUTORCH_ROOT="$cache/executorch-$et_version-aarch64/executorch")
      ;;
    onnxruntime)
      [ -f "${ONNXRUNTIME_INCLUDE_DIR:-}/onnxruntime_c_api.h" ] || {
        echo "onnxruntime: no onnxruntime_c_api.h in ONNXRUNTIME_INCLUDE_DIR='${ONNXRUNTIME_INCLUDE_DIR:-}'" >&2; exit 1; }
      unpack_wheel onnxruntime "$ort_version" "$cache/onnxruntime-$ort_version-aarch64"
      # The wheel has only libonnxruntime.so.<version> (soname libonnxruntime.so.1): lay out a prefix.
      prefix=$cache/onnxruntime-$ort_version-aarch64/prefix
      mkdir -p "$prefix/lib" "$prefix/include"
      cp "$cache/onnxruntime-$ort_version-aarch64/onnxruntime/capi/libonnxruntime.so.$ort_version" "$prefix/lib/libonnxruntime.so.1"
      ln -sf libonnxruntime.so.1 "$prefix/lib/libonnxruntime.so"
      cp "$ONNXRUNTIME_INCLUDE_DIR/onnxruntime_c_api.h" "$prefix/include/"
      cmake_args+=(-DEDGECAP_WITH_ONNXRUNTIME=ON -DONNXRUNTIME_ROOT="$prefix")
      ;;
    *) echo "unknown runtime '$runtime' (want executorch or onnxruntime)" >&2; exit 2 ;;
  esac
done

build=$cache/build-linux-aarch64-$(IFS=-; echo "${runtimes[*]:-none}")
cmake -S "$here" -B "$build" "${cmake_args[@]}" >&2
cmake --build "$build" -j "$(nproc)" >&2
echo "$build/edgecap_runner"
