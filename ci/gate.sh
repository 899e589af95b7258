#!/usr/bin/env bash
# The gpuchaos release gate: the shell steps of the composite action (action.yml) and of the
# GitLab template (ci/gitlab/gpuchaos.gitlab-ci.yml), kept in one file so a test can run them.
#
#   ci/gate.sh setup-key   the venv's path, the torch requirement and a cache key (outputs)
#   ci/gate.sh setup       the project set up as `make install` does (what `make run` needs)
#   ci/gate.sh run         gpuchaos run EXPERIMENT (or gpuchaos gameday PLAN); never fails itself
#   ci/gate.sh baseline    find the baseline run folder (a path, or last-pass: download it)
#   ci/gate.sh compare     gpuchaos compare BASELINE RUN --max-regression ...
#   ci/gate.sh verdict     exit 0, or 1 (an SLO missed, a regression), or 2 (could not run)
#   ci/gate.sh all         run, baseline, compare and verdict in one go (GitLab, a shell)
#
# Inputs are environment variables (the action maps its inputs onto them):
#   GPUCHAOS_EXPERIMENT      experiment file, or a game-day plan
#   GPUCHAOS_PLAN            auto (default: a file under experiments/gamedays/ is a plan),
#                            true or false
#   GPUCHAOS_VARS            NAME=VALUE lines, each passed as --var (experiments only)
#   GPUCHAOS_BASELINE        empty (no comparison), last-pass, or a run folder / scorecard.json
#   GPUCHAOS_MAX_REGRESSION  PCT or NAME=PCT items (spaces or new lines), each --max-regression
#   GPUCHAOS_SERVE           empty/false (default), true, or [HOST:]PORT for `run --serve`
#   GPUCHAOS_OUT             the run folder (default results/ci/<run id>-<experiment>)
#   GPUCHAOS_ARTIFACT        the artifact's name (default gpuchaos-<experiment>)
#   GPUCHAOS_BIN             the gpuchaos command (default: gpuchaos on PATH)
#   GPUCHAOS_HOME            the gpuchaos checkout (default: this script's repository)
#   GPUCHAOS_VENV, GPUCHAOS_TORCH, GPUCHAOS_PYTHON   for setup (TORCH as the Makefile picks)
# Steps after `run` read what it found from GPUCHAOS_RUN_DIR, GPUCHAOS_EXIT_CODE,
# GPUCHAOS_KIND, GPUCHAOS_BASELINE_DIR and GPUCHAOS_COMPARE_EXIT_CODE (the action passes its
# step outputs; `all` keeps them in this shell).
#
# Outputs go to $GITHUB_OUTPUT and the summary to $GITHUB_STEP_SUMMARY when those are set
# (GitHub Actions); elsewhere only the log shows them.
set -uo pipefail

GPUCHAOS_HOME=${GPUCHAOS_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
GPUCHAOS_BIN=${GPUCHAOS_BIN:-gpuchaos}

say() { printf 'gpuchaos gate: %s\n' "$*" >&2; }

output() { # output NAME VALUE: a step output (GitHub) and a shell variable for `all`
    if [ -n "${GITHUB_OUTPUT:-}" ]; then
        printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"
    fi
}

summary() { # summary TEXT...: append lines to the job's step summary (GitHub)
    if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
        printf '%s\n' "$@" >>"$GITHUB_STEP_SUMMARY"
    fi
}

notice() { # notice LEVEL TEXT: an annotation on GitHub, a plain line elsewhere
    if [ "${GITHUB_ACTIONS:-}" = "true" ]; then
        printf '::%s title=gpuchaos gate::%s\n' "$1" "$2"
    else
        say "$1: $2"
    fi
}

stem() { # the experiment's (or plan's) name: its file name without .yaml / .yml
    local base
    base=$(basename "${GPUCHAOS_EXPERIMENT:-experiment}")
    base=${base%.yaml}
    printf '%s' "${base%.yml}"
}

is_plan() {
    case "${GPUCHAOS_PLAN:-auto}" in
    true | yes | 1) return 0 ;;
    false | no | 0) return 1 ;;
    esac
    case "/${GPUCHAOS_EXPERIMENT:-}" in
    */experiments/gamedays/*) return 0 ;;
    esac
    return 1
}

# -- setup: the same steps as the Makefile's `install` target (what `make run` needs) --------

torch_spec() { # the Makefile's TORCH logic: torch with an NVIDIA driver, else the pinned CPU one
    if [ -n "${GPUCHAOS_TORCH:-}" ]; then
        printf '%s' "$GPUCHAOS_TORCH"
    elif command -v nvidia-smi >/dev/null 2>&1; then
        printf 'torch'
    else
        printf '%s' "$(sed -n 's/^TORCH ?= .*,torch,\(torch==[^)]*\))$/\1/p' "$GPUCHAOS_HOME/Makefile")"
    fi
}

cmd_setup_key() {
    local venv torch py hash
    venv=${GPUCHAOS_VENV:-$GPUCHAOS_HOME/.venv}
    torch=$(torch_spec)
    py=$("${GPUCHAOS_PYTHON:-python3}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    hash=$(sha256sum "$GPUCHAOS_HOME/pyproject.toml" | cut -c1-16)
    output venv "$venv"
    output torch "$torch"
    output cache-key "gpuchaos-venv-$(uname -s)-$(uname -m)-py$py-$hash-${torch//[^A-Za-z0-9.=+-]/_}"
    say "venv $venv, torch '$torch', python $py"
}

cmd_setup() {
    local venv torch
    venv=${GPUCHAOS_VENV:-$GPUCHAOS_HOME/.venv}
    torch=$(torch_spec)
    make -C "$GPUCHAOS_HOME" install PYTHON="${GPUCHAOS_PYTHON:-python3}" VENV="$venv" \
        TORCH="$torch" || return 2
    if [ -n "${GITHUB_PATH:-}" ]; then
        printf '%s\n' "$venv/bin" >>"$GITHUB_PATH"
    fi
    "$venv/bin/gpuchaos" --version
}

# -- run ---------------------------------------------------------------------------------------

new_out() { # a new, empty run folder path
    local out=${GPUCHAOS_OUT:-results/ci/${GITHUB_RUN_ID:-local}-${GITHUB_RUN_ATTEMPT:-1}-$(stem)}
    local try=$out n=1
    while [ -e "$try" ] && [ -n "$(ls -A "$try" 2>/dev/null)" ]; do
        n=$((n + 1))
        try=$out-$n
    done
    printf '%s' "$try"
}

cmd_run() {
    local args=() line code kind out
    if [ -z "${GPUCHAOS_EXPERIMENT:-}" ] || [ ! -f "$GPUCHAOS_EXPERIMENT" ]; then
        notice error "no experiment file '${GPUCHAOS_EXPERIMENT:-}' (input experiment)"
        GPUCHAOS_EXIT_CODE=2
        output exit-code 2
        return 0
    fi
    out=$(new_out)
    if is_plan; then
        kind=gameday
        [ -n "${GPUCHAOS_VARS//[[:space:]]/}" ] && notice warning "vars are ignored for a game-day plan (the plan sets each experiment's overrides)"
        mkdir -p "$(dirname "$out")"
        # without GITHUB_STEP_SUMMARY: this script appends the summary (once) below
        env -u GITHUB_STEP_SUMMARY "$GPUCHAOS_BIN" gameday "$GPUCHAOS_EXPERIMENT" --out "$out"
        code=$?
    else
        kind=run
        while IFS= read -r line; do
            line=${line#"${line%%[![:space:]]*}"}
            line=${line%"${line##*[![:space:]]}"}
            case "$line" in '' | '#'*) continue ;; esac
            args+=(--var "$line")
        done <<<"${GPUCHAOS_VARS:-}"
        case "${GPUCHAOS_SERVE:-}" in
        '' | false | off | no | 0) ;;
        true | on | yes | 1) args+=(--serve) ;;
        *) args+=(--serve "$GPUCHAOS_SERVE") ;;
        esac
        mkdir -p "$(dirname "$out")"
        env -u GITHUB_STEP_SUMMARY "$GPUCHAOS_BIN" run "$GPUCHAOS_EXPERIMENT" --ci --out "$out" \
            "${args[@]}"
        code=$?
    fi
    GPUCHAOS_RUN_DIR=$out GPUCHAOS_EXIT_CODE=$code GPUCHAOS_KIND=$kind
    output run-dir "$out"
    output exit-code "$code"
    output kind "$kind"
    output artifact-name "${GPUCHAOS_ARTIFACT:-gpuchaos-$(stem)}"
    if [ -f "$out/summary.md" ]; then
        summary "$(cat "$out/summary.md")"
    else
        summary "## gpuchaos: $(stem): no summary (exit $code)" "" \
            "The run wrote no \`summary.md\`; see the job log and the run folder artifact."
    fi
    say "$kind $GPUCHAOS_EXPERIMENT: exit $code, run folder $out"
    return 0
}

# -- baseline ------------------------------------------------------------------------------------

card_dir() { # card_dir DIR: the folder under DIR that holds scorecard.json (artifacts nest)
    local card
    card=$(find "$1" -name scorecard.json -type f 2>/dev/null | sort | head -n 1)
    [ -n "$card" ] && dirname "$card"
}

last_pass_github() { # the last passing run of this workflow on the default branch, via gh
    local dest=$1 branch workflow id
    export GH_TOKEN=${GH_TOKEN:-${GITHUB_TOKEN:-}}
    branch=${GPUCHAOS_DEFAULT_BRANCH:-$(gh api "repos/$GITHUB_REPOSITORY" --jq .default_branch)} || return 1
    workflow=${GITHUB_WORKFLOW_REF%@*}
    workflow=${workflow##*/}
    for id in $(gh run list --repo "$GITHUB_REPOSITORY" --workflow "$workflow" --branch "$branch" \
        --status success --limit 20 --json databaseId --jq '.[].databaseId'); do
        [ "$id" = "${GITHUB_RUN_ID:-}" ] && continue
        rm -rf "$dest" && mkdir -p "$dest"
        if gh run download "$id" --repo "$GITHUB_REPOSITORY" --dir "$dest" \
            --name "${GPUCHAOS_ARTIFACT:-gpuchaos-$(stem)}"; then
            say "baseline: run $id of $workflow on $branch"
            return 0
        fi
    done
    return 1
}

last_pass_gitlab() { # the latest successful pipeline's artifacts of this job on the default branch
    local dest=$1 url auth
    url="$CI_API_V4_URL/projects/$CI_PROJECT_ID/jobs/artifacts/${GPUCHAOS_DEFAULT_BRANCH:-$CI_DEFAULT_BRANCH}/download?job=${GPUCHAOS_BASELINE_JOB:-$CI_JOB_NAME}"
    if [ -n "${GPUCHAOS_GITLAB_TOKEN:-}" ]; then
        auth="PRIVATE-TOKEN: $GPUCHAOS_GITLAB_TOKEN"
    else
        auth="JOB-TOKEN: $CI_JOB_TOKEN"
    fi
    mkdir -p "$dest"
    curl --silent --show-error --fail --location --header "$auth" --output "$dest.zip" "$url" &&
        "${GPUCHAOS_PYTHON:-python3}" -m zipfile -e "$dest.zip" "$dest"
}

cmd_baseline() {
    local dest found=""
    case "${GPUCHAOS_BASELINE:-}" in
    '' | none) return 0 ;;
    last-pass)
        if [ "${GPUCHAOS_KIND:-run}" = "gameday" ]; then
            notice notice "no comparison for a game-day plan: gameday.html compares with the last game day"
            return 0
        fi
        dest=${RUNNER_TEMP:-${TMPDIR:-/tmp}}/gpuchaos-baseline-$(stem)
        rm -rf "$dest" "$dest.zip"
        if [ "${GITHUB_ACTIONS:-}" = "true" ] && last_pass_github "$dest"; then
            found=$(card_dir "$dest")
        elif [ "${GITLAB_CI:-}" = "true" ] && last_pass_gitlab "$dest"; then
            found=$(card_dir "$dest")
        fi
        if [ -z "$found" ]; then
            notice warning "no baseline: no passing run of $(stem) on the default branch yet; this run is not compared"
            return 0
        fi
        ;;
    *)
        found=$GPUCHAOS_BASELINE
        if [ ! -e "$found" ]; then
            notice error "baseline $found: no such run folder or scorecard"
            GPUCHAOS_COMPARE_EXIT_CODE=2
            output compare-exit-code 2
            return 0
        fi
        ;;
    esac
    GPUCHAOS_BASELINE_DIR=$found
    output baseline-dir "$found"
    say "baseline: $found"
}

cmd_compare() {
    local base=${GPUCHAOS_BASELINE_DIR:-} run=${GPUCHAOS_RUN_DIR:-} args=() item code table
    if [ -z "$base" ] || [ -z "$run" ] || [ ! -f "$run/scorecard.json" ]; then
        return 0 # nothing to compare (no baseline, or the run left no scorecard: exit 2 says so)
    fi
    for item in ${GPUCHAOS_MAX_REGRESSION:-}; do
        args+=(--max-regression "$item")
    done
    table=$("$GPUCHAOS_BIN" compare "$base" "$run" "${args[@]}" 2>&1)
    code=$?
    printf '%s\n' "$table" | tee "$run/compare.txt"
    GPUCHAOS_COMPARE_EXIT_CODE=$code
    output compare-exit-code "$code"
    summary "" "### Compared with the baseline" "" "Baseline: \`$base\`" "" '```' \
        "$(printf '%s\n' "$table" | grep -v '^::')" '```'
    return 0
}

# -- verdict ---------------------------------------------------------------------------------------

cmd_verdict() {
    local run=${GPUCHAOS_EXIT_CODE:-2} cmp=${GPUCHAOS_COMPARE_EXIT_CODE:-0}
    case "$run" in 0 | 1 | 2) ;; *) run=2 ;; esac
    case "$cmp" in 0 | 1 | 2) ;; *) cmp=2 ;; esac
    if [ "$run" = 2 ] || [ "$cmp" = 2 ]; then
        say "FAILED: the harness could not run or compare (run exit $run, compare exit $cmp)"
        return 2
    elif [ "$run" = 1 ]; then
        say "FAILED: an SLO was missed (run exit 1)"
        return 1
    elif [ "$cmp" = 1 ]; then
        say "FAILED: a regression against the baseline (compare exit 1)"
        return 1
    fi
    say "passed"
    return 0
}

main() {
    case "${1:-}" in
    setup-key) cmd_setup_key ;;
    setup) cmd_setup ;;
    run) cmd_run ;;
    baseline) cmd_baseline ;;
    compare) cmd_compare ;;
    verdict) cmd_verdict ;;
    all)
        cmd_run
        cmd_baseline
        cmd_compare
        cmd_verdict
        ;;
    *)
        say "usage: $0 setup-key|setup|run|baseline|compare|verdict|all"
        return 2
        ;;
    esac
}

main "$@"
