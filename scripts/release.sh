#!/usr/bin/env bash
# Builds the release archives the action installs (scripts/action/install.sh):
#   OUT/assetctl_<os>_<arch>.tar.gz   (.zip for windows), holding assetctl[.exe] and README.md
#   OUT/checksums.txt                 sha256 of every archive, in name order
#   OUT/sbom.spdx.json                when syft is installed
# Reproducible: CGO_ENABLED=0, -trimpath, no build ID, no VCS stamp (the
# version and commit are linked in with -X), file times and owners fixed to
# the commit's, archives written in name order without gzip timestamps; so
# one commit built twice, from two directories, gives identical bytes.
#
# Environment (all optional):
#   VERSION             default: the tag at HEAD, else v0.0.0-snapshot+<commit>
#   COMMIT              default: git rev-parse HEAD
#   SOURCE_DATE_EPOCH   default: the commit's time
#   OUT                 default: release (gitignored)
#   TARGETS             default: linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

commit="${COMMIT:-$(git rev-parse HEAD)}"
version="${VERSION:-$(git describe --tags --exact-match 2>/dev/null || echo "v0.0.0-snapshot+${commit:0:12}")}"
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
out="${OUT:-release}"
targets="${TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64}"
pkg=github.com/assetctl/assetctl/internal/cli

rm -rf "$out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

for t in $targets; do
  os="${t%/*}"
  arch="${t#*/}"
  exe=""
  [ "$os" = windows ] && exe=.exe
  dir="$stage/${os}_${arch}"
  mkdir -p "$dir"
  echo "release: $version $os/$arch" >&2
  CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go build -trimpath -buildvcs=false \
    -ldflags "-s -w -buildid= -X $pkg.version=$version -X $pkg.commit=$commit" \
    -o "$dir/assetctl$exe" ./cmd/assetctl
  cp README.md "$dir/README.md"
  chmod 0755 "$dir/assetctl$exe"
  chmod 0644 "$dir/README.md"
  touch -d "@$epoch" "$dir/assetctl$exe" "$dir/README.md"
  name="assetctl_${os}_${arch}"
  if [ "$os" = windows ]; then
    (cd "$dir" && TZ=UTC zip -q -X -9 "$out/$name.zip" "assetctl$exe" README.md)
  else
    tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner --format=ustar \
      -C "$dir" -cf - "assetctl$exe" README.md | gzip -n -9 >"$out/$name.tar.gz"
  fi
done

(cd "$out" && sha256sum assetctl_* >checksums.txt) # the glob sorts by byte (LC_ALL=C)

if command -v syft >/dev/null 2>&1; then
  syft scan dir:. -o spdx-json="$out/sbom.spdx.json" -q
else
  echo "release: syft is not installed: no SBOM" >&2
fi
echo "release: $version ($commit) in $out" >&2
