#!/usr/bin/env bash
# Runs assetctl for the action (action.yml). Inputs arrive as
# ASSETCTL_ACTION_* environment variables (composite steps get no INPUT_*);
# assetctl itself writes the step outputs and summary (GITHUB_OUTPUT,
# GITHUB_STEP_SUMMARY), so this only turns inputs into arguments.
# Empty arrays expand as ${a[@]+"${a[@]}"}: macOS ships bash 3.2, where
# "${a[@]}" of an empty array fails under set -u.
set -euo pipefail

fail() { echo "::error title=assetctl::$*" >&2; exit 1; }

bin="${ASSETCTL_ACTION_BIN:-}"
[ -n "$bin" ] || bin="$(command -v assetctl || true)"
[ -n "$bin" ] || fail "assetctl is not installed (the install step gave no path)"

common=()
[ -n "${ASSETCTL_ACTION_CONFIG_FILE:-}" ] && common+=(--config "$ASSETCTL_ACTION_CONFIG_FILE")

deploy=()
add() { [ -n "$2" ] && deploy+=("$1" "$2"); return 0; }
add --bucket "${ASSETCTL_ACTION_BUCKET:-}"
add --region "${ASSETCTL_ACTION_REGION:-}"
add --endpoint "${ASSETCTL_ACTION_ENDPOINT:-}"
add --origin-path "${ASSETCTL_ACTION_ORIGIN_PATH:-}"
add --base-url "${ASSETCTL_ACTION_BASE_URL:-}"
add --keep "${ASSETCTL_ACTION_KEEP:-}"
add --grace "${ASSETCTL_ACTION_GRACE:-}"
add --max-deletes "${ASSETCTL_ACTION_MAX_DELETES:-}"
for d in $(echo "${ASSETCTL_ACTION_DISTRIBUTIONS:-}" | tr ',' ' '); do deploy+=(--cloudfront-distribution "$d"); done
for u in $(echo "${ASSETCTL_ACTION_PURGE:-}" | tr ',' ' '); do deploy+=(--purge "$u"); done
case "${ASSETCTL_ACTION_DRY_RUN:-false}" in
  true) deploy+=(--dry-run) ;;
  false|"") ;;
  *) fail "dry-run: want true or false, got ${ASSETCTL_ACTION_DRY_RUN}" ;;
esac

preview="${ASSETCTL_ACTION_PREVIEW:-}"
previewArg=()
case "$preview" in
  ""|false) ;;
  true|auto) previewArg=(--preview) ;;
  *) previewArg=("--preview=$preview") ;;
esac

extra=()
if [ -n "${ASSETCTL_ACTION_ARGS:-}" ]; then
  read -r -a extra <<<"$ASSETCTL_ACTION_ARGS"
fi

site="${ASSETCTL_ACTION_SITE_DIR:-.}"
out="${ASSETCTL_ACTION_OUT_DIR:-dist}"

run() { echo "+ assetctl $*" >&2; "$bin" "$@"; }

case "${ASSETCTL_ACTION_COMMAND:-build-deploy}" in
build)
  run ${common[@]+"${common[@]}"} build "$site" -o "$out" ${extra[@]+"${extra[@]}"}
  ;;
build-deploy)
  run ${common[@]+"${common[@]}"} build "$site" -o "$out"
  run ${common[@]+"${common[@]}"} deploy "$out" ${deploy[@]+"${deploy[@]}"} ${previewArg[@]+"${previewArg[@]}"} ${extra[@]+"${extra[@]}"}
  ;;
deploy)
  run ${common[@]+"${common[@]}"} deploy "$out" ${deploy[@]+"${deploy[@]}"} ${previewArg[@]+"${previewArg[@]}"} ${extra[@]+"${extra[@]}"}
  ;;
plan)
  run ${common[@]+"${common[@]}"} deploy "$out" ${deploy[@]+"${deploy[@]}"} ${previewArg[@]+"${previewArg[@]}"} --dry-run ${extra[@]+"${extra[@]}"}
  ;;
rollback)
  run ${common[@]+"${common[@]}"} deploy --rollback ${deploy[@]+"${deploy[@]}"} ${extra[@]+"${extra[@]}"}
  ;;
preview-cleanup)
  cleanup=(--cleanup)
  case "$preview" in
    ""|false|true|auto) ;;
    *) cleanup=("--cleanup=$preview") ;;
  esac
  run ${common[@]+"${common[@]}"} deploy ${cleanup[@]+"${cleanup[@]}"} ${deploy[@]+"${deploy[@]}"} ${extra[@]+"${extra[@]}"}
  ;;
*)
  fail "command: ${ASSETCTL_ACTION_COMMAND} is not one of build-deploy, build, deploy, plan, rollback, preview-cleanup"
  ;;
esac
