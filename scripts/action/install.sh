#!/usr/bin/env bash
# Installs assetctl for the action (action.yml) and prints its path as the
# step output "path". Modes (ASSETCTL_ACTION_INSTALL):
#   release  download assetctl_<os>_<arch>.tar.gz (.zip on Windows) from a
#            release, verify it against the release's checksums.txt, and
#            keep it in the runner's tool cache, where the next run finds it
#   source   go build from the action's own checkout (ASSETCTL_ACTION_PATH)
#   skip     use the assetctl already on PATH
#   auto     release when the version is known (the version input, or the
#            action's ref when it is a release tag), else source when Go is
#            installed, else the latest release
# ASSETCTL_DOWNLOAD_URL overrides where release assets are fetched from (the
# tests serve them from 127.0.0.1); ASSETCTL_ACTION_OS / _ARCH override the
# runner's.
set -euo pipefail

fail() { echo "::error title=assetctl install::$*" >&2; exit 1; }
log() { echo "assetctl install: $*" >&2; }

mode="${ASSETCTL_ACTION_INSTALL:-auto}"
version="${ASSETCTL_ACTION_VERSION:-}"
ref="${ASSETCTL_ACTION_REF:-}"
action_path="${ASSETCTL_ACTION_PATH:-$(cd "$(dirname "$0")/../.." && pwd)}"
temp="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"

case "${ASSETCTL_ACTION_OS:-${RUNNER_OS:-$(uname -s)}}" in
  Linux|linux) os=linux ;;
  macOS|Darwin|darwin) os=darwin ;;
  Windows|windows|MINGW*|MSYS*|CYGWIN*) os=windows ;;
  *) fail "unsupported runner OS ${ASSETCTL_ACTION_OS:-${RUNNER_OS:-}}: use install: source" ;;
esac
case "${ASSETCTL_ACTION_ARCH:-${RUNNER_ARCH:-$(uname -m)}}" in
  X64|x64|amd64|x86_64) arch=amd64 ;;
  ARM64|arm64|aarch64) arch=arm64 ;;
  *) fail "unsupported runner architecture ${ASSETCTL_ACTION_ARCH:-${RUNNER_ARCH:-}}: use install: source" ;;
esac
exe=""
[ "$os" = windows ] && exe=".exe"

if [ -n "$version" ] && [ "${version#v}" = "$version" ]; then
  version="v$version"
fi

if [ "$mode" = auto ]; then
  if [ -z "$version" ] && [[ "$ref" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    version="$ref"
  fi
  if [ -n "$version" ]; then
    mode=release
  elif command -v go >/dev/null 2>&1 && [ -f "$action_path/go.mod" ]; then
    mode=source
  else
    mode=release
  fi
fi

emit() { # emit BIN: report the binary and put its folder on PATH
  local bin="$1"
  "$bin" version >&2 || fail "$bin does not run"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "path=$bin" >>"$GITHUB_OUTPUT"; fi
  if [ -n "${GITHUB_PATH:-}" ]; then dirname "$bin" >>"$GITHUB_PATH"; fi
  echo "$bin"
}

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

download() { # download URL FILE
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 3 -o "$2" "$1"
  else
    wget -q -O "$2" "$1"
  fi
}

case "$mode" in
skip)
  bin="$(command -v "assetctl$exe" || command -v assetctl || true)"
  [ -n "$bin" ] || fail "install: skip, but assetctl is not on PATH"
  emit "$bin"
  ;;
source)
  command -v go >/dev/null 2>&1 || fail "install: source needs Go on PATH (actions/setup-go)"
  out="$temp/assetctl-source"
  mkdir -p "$out"
  log "building from $action_path"
  (cd "$action_path" && CGO_ENABLED=0 go build -trimpath -o "$out/assetctl$exe" ./cmd/assetctl) ||
    fail "go build in $action_path failed"
  emit "$out/assetctl$exe"
  ;;
release)
  repo="${ASSETCTL_ACTION_REPOSITORY:-assetctl/assetctl}"
  [ -n "$repo" ] || repo=assetctl/assetctl
  if [ -n "$version" ]; then
    base="${ASSETCTL_DOWNLOAD_URL:-https://github.com/$repo/releases/download/$version}"
  else
    base="${ASSETCTL_DOWNLOAD_URL:-https://github.com/$repo/releases/latest/download}"
  fi
  ext=tar.gz
  [ "$os" = windows ] && ext=zip
  archive="assetctl_${os}_${arch}.$ext"
  cache=""
  if [ -n "$version" ] && [ -n "${RUNNER_TOOL_CACHE:-}" ]; then
    cache="$RUNNER_TOOL_CACHE/assetctl/${version#v}/$arch"
    if [ -f "$cache.complete" ] && [ -x "$cache/assetctl$exe" ]; then
      log "found $version in the tool cache"
      emit "$cache/assetctl$exe"
      exit 0
    fi
  fi
  work="$(mktemp -d "$temp/assetctl-download.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  log "downloading $base/$archive"
  download "$base/checksums.txt" "$work/checksums.txt" || fail "download $base/checksums.txt failed"
  download "$base/$archive" "$work/$archive" || fail "download $base/$archive failed (is there a release $version for $os/$arch?)"
  want="$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1 }' "$work/checksums.txt")"
  [ -n "$want" ] || fail "checksums.txt has no entry for $archive: not installing it"
  got="$(sha256 "$work/$archive")"
  [ "$got" = "$want" ] || fail "checksum mismatch for $archive: got sha256 $got, checksums.txt says $want: not installing it"
  mkdir -p "$work/x"
  if [ "$ext" = zip ]; then
    if command -v unzip >/dev/null 2>&1; then unzip -q "$work/$archive" -d "$work/x"
    else 7z x -y -o"$work/x" "$work/$archive" >/dev/null; fi
  else
    tar -xzf "$work/$archive" -C "$work/x"
  fi
  [ -f "$work/x/assetctl$exe" ] || fail "$archive holds no assetctl$exe"
  chmod +x "$work/x/assetctl$exe"
  if [ -n "$cache" ]; then
    rm -rf "$cache" "$cache.complete"
    mkdir -p "$cache"
    cp "$work/x/assetctl$exe" "$cache/"
    touch "$cache.complete"
    emit "$cache/assetctl$exe"
  else
    dest="$temp/assetctl-release"
    mkdir -p "$dest"
    cp "$work/x/assetctl$exe" "$dest/"
    emit "$dest/assetctl$exe"
  fi
  ;;
*)
  fail "install: $mode is not one of auto, release, source, skip"
  ;;
esac
