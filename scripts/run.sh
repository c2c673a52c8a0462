#!/usr/bin/env bash
# qqwatchdog launcher: the one command operators type.
#
#   scripts/run.sh --demo [--duration S]       the local simulator + watchdog + worker, with a scripted outage
#   scripts/run.sh [--env-file PATH] [opts]    production, in the foreground: exec python -m watchdog run opts
#   scripts/run.sh --background [...]          the same, detached (setsid), pid in run/qqwatchdog.pid,
#                                              output appended to run/qqwatchdog.log
#   scripts/run.sh stop [--timeout S]          SIGTERM the background watchdog, wait, report
#   scripts/run.sh restart [--timeout S] [--wait S]   stop the background watchdog and start it again with the
#                                              options it was started with (run/qqwatchdog.args); it resumes
#                                              the persisted session; reports the gap (waits up to --wait S,
#                                              default 30, for the worker to be connected again)
#   scripts/run.sh status [--json]             python -m watchdog status
#   scripts/run.sh install                     only create / refresh .venv (before a first systemd start)
#
# Output: JSON lines, or a readable rendering (--pretty); the default is pretty on a terminal, JSON otherwise.
# Works from any directory: the project's .venv is created on first use (and refreshed when pyproject.toml
# changes); the watchdog runs with the project directory as its working directory. Relative paths given to
# --env-file, --config, --log-file and --status-file (or in QQW_LOG_FILE / QQW_STATUS_FILE) are taken
# relative to the directory you ran this from.
# Exit status: the watchdog's (0 stopped, 69 gave up, 78 configuration error: also for a bad env file or
# missing credentials, found here before anything starts; 73 another watchdog already runs on this run
# directory: it holds the lock beside the status file, and the pid file names it).
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
EX_CONFIG=78
EX_LOCKED=73

fail() { # fail CODE MESSAGE: one line on stderr, then exit
    echo "qqwatchdog: $2" >&2
    exit "$1"
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    echo "Watchdog options (python -m watchdog run --help): --config FILE, --retry-initial S, ... see README.md."
}

abs_path() { # relative to the caller's directory, before we change to the project directory
    case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/$1" ;;
    esac
}

trim() { # trim surrounding whitespace of $1
    local s="$1"
    s="${s#"${s%%[![:space:]]*}"}"
    printf '%s' "${s%"${s##*[![:space:]]}"}"
}

# KEY=VALUE lines, as in a systemd EnvironmentFile: blank lines and # comments skipped, an optional
# `export ` prefix, values optionally in single or double quotes taken literally. Never sourced or
# evaluated: a value like $(rm -rf ~) stays that text. The file holds the bot's secret, so a file that
# group or others may read or write is refused.
load_env_file() {
    local path="$1" mode n=0 line key value
    [ -e "$path" ] || fail $EX_CONFIG "env file $path: no such file"
    [ -f "$path" ] && [ -r "$path" ] || fail $EX_CONFIG "env file $path: not a readable file"
    mode="$(stat -L -c '%a' "$path")"
    if (((8#$mode & 8#077) != 0)); then
        fail $EX_CONFIG "refusing env file $path: its mode $mode lets group or others read or change the bot's secret; run: chmod 600 $path"
    fi
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        line="$(trim "${line%$'\r'}")"
        [[ -z "$line" || "$line" == \#* ]] && continue
        [[ "$line" =~ ^export[[:space:]]+(.*)$ ]] && line="${BASH_REMATCH[1]}"
        if [[ ! "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=(.*)$ ]]; then
            fail $EX_CONFIG "env file $path, line $n: expected KEY=VALUE"
        fi
        key="${BASH_REMATCH[1]}"
        value="$(trim "${BASH_REMATCH[2]}")"
        if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
            value="${BASH_REMATCH[1]}"
        fi
        export "$key=$value"
    done <"$path"
}

running_pid() { # the background watchdog's pid, if its pid file names a live watchdog process
    local pid
    [ -f "$PID_FILE" ] || return 1
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # A stale pid file may name a recycled pid: only a process running the watchdog counts.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'watchdog' || return 1
    echo "$pid"
}

cmd_stop() {
    local timeout=30 pid waited=0
    while [ $# -gt 0 ]; do
        case "$1" in
        --timeout) timeout="${2:?--timeout needs seconds}" && shift 2 ;;
        --timeout=*) timeout="${1#*=}" && shift ;;
        *) fail 2 "stop: unknown option $1" ;;
        esac
    done
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        echo "qqwatchdog: not running (no live process in $PID_FILE)"
        exit 3
    fi
    echo "qqwatchdog: stopping pid $pid (SIGTERM; the watchdog stops its worker first)"
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= timeout * 10)); then
            echo "qqwatchdog: pid $pid still running after ${timeout}s; sending SIGKILL to its process group" >&2
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            rm -f "$PID_FILE"
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    rm -f "$PID_FILE"
    echo "qqwatchdog: stopped pid $pid after $((waited / 10)).$((waited % 10))s; log: $BACKGROUND_LOG"
}

# restart: the options the background watchdog was started with, saved by --background in the run directory
# (NUL-separated, so any argument survives), replace this command line; the run goes on as --background.
restart=0 restart_timeout=30 restart_wait=30
if [ "${1:-}" = "restart" ]; then
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
        --timeout) restart_timeout="${2:?--timeout needs seconds}" && shift 2 ;;
        --timeout=*) restart_timeout="${1#*=}" && shift ;;
        --wait) restart_wait="${2:?--wait needs seconds}" && shift 2 ;;
        --wait=*) restart_wait="${1#*=}" && shift ;;
        *) fail 2 "restart: unknown option $1 (it restarts with the options of the last --background start)" ;;
        esac
    done
    ARGS_FILE="$(abs_path "${QQW_RUN_DIR:-$ROOT/run}")/qqwatchdog.args"
    [ -f "$ARGS_FILE" ] || fail 1 "restart: no saved start options ($ARGS_FILE); start it once with scripts/run.sh --background [options]"
    mapfile -d '' -t saved <"$ARGS_FILE"
    set -- --background "${saved[@]}"
    restart=1
fi

exists_unreaped() { # the process runs (an exited one, a zombie its new parent has not reaped yet, does not)
    kill -0 "$1" 2>/dev/null && [ "$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)" != Z ]
}

elapsed() { # elapsed START END: seconds between two $EPOCHREALTIME values, 3 decimals
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'
}

report_restart_gap() { # the stop began, the old one was gone, where the new run's lines begin, how long to wait
    local began="$1" stopped="$2" offset="$3" wait_s="$4" line="" waited=0 how stamp at
    while ((waited < wait_s * 20)); do
        line="$(tail -c "+$((offset + 1))" "$BACKGROUND_LOG" 2>/dev/null | grep -m1 '"event": "gateway.connected"' || true)"
        [ -n "$line" ] && break
        running_pid >/dev/null || break
        sleep 0.05
        waited=$((waited + 1))
    done
    if [ -z "$line" ]; then
        echo "qqwatchdog: restart: the old watchdog was gone for $(elapsed "$stopped" "$EPOCHREALTIME")s so far; the worker is not connected yet (see $BACKGROUND_LOG)" >&2
        return 0
    fi
    case "$line" in
    *'"resumed": true'*) how="resumed the session: events sent meanwhile are replayed" ;;
    *) how="a NEW session: the platform did not resume the old one (see the reason in the log)" ;;
    esac
    # When it connected is the line's own timestamp (this script may only notice it later).
    stamp="$(sed -n 's/.*"timestamp": "\([^"]*\)".*/\1/p' <<<"$line")"
    at="$(date -d "$stamp" +%s.%N 2>/dev/null || echo "$EPOCHREALTIME")"
    echo "qqwatchdog: restart: connected again $(elapsed "$began" "$at")s after the stop began ($(elapsed "$stopped" "$at")s after the old watchdog exited); $how"
}

# --- arguments -------------------------------------------------------------------------------------------
command="run"
case "${1:-}" in
stop | status | install) command="$1" && shift ;;
esac

demo=0 background=0 output="auto" env_file="" duration="${QQW_DEMO_DURATION:-}" app_id_flag=0 config_flag=0
pass=()
if [ "$command" = "run" ]; then
    while [ $# -gt 0 ]; do
        case "$1" in
        -h | --help) usage && exit 0 ;;
        --demo) demo=1 && shift ;;
        --background) background=1 && shift ;;
        --pretty) output="pretty" && shift ;;
        --json) output="json" && shift ;;
        --env-file) env_file="$(abs_path "${2:?--env-file needs a path}")" && shift 2 ;;
        --env-file=*) env_file="$(abs_path "${1#*=}")" && shift ;;
        --duration) duration="${2:?--duration needs seconds}" && shift 2 ;;
        --duration=*) duration="${1#*=}" && shift ;;
        --config | --log-file | --status-file | --state-file)
            [ "$1" = "--config" ] && config_flag=1
            pass+=("$1" "$(abs_path "${2:?$1 needs a path}")") && shift 2
            ;;
        --config=* | --log-file=* | --status-file=* | --state-file=*)
            [[ "$1" == --config=* ]] && config_flag=1
            pass+=("${1%%=*}=$(abs_path "${1#*=}")") && shift
            ;;
        --app-id | --app-id=*) app_id_flag=1 && pass+=("$1") && shift ;;
        --) shift && pass+=("$@") && break ;; # the rest goes to the watchdog untouched
        *) pass+=("$1") && shift ;;
        esac
    done
fi

# --- checks that need no Python: fail fast, also on the very first run -----------------------------------
# QQW_RUN_DIR: where the pid file, the background log and the demo's files go (default: run/ in the project).
if [ -n "$env_file" ]; then
    load_env_file "$env_file"
fi
for var in QQW_LOG_FILE QQW_STATUS_FILE QQW_STATE_FILE QQW_RUN_DIR; do
    if [ -n "${!var:-}" ]; then
        export "$var=$(abs_path "${!var}")"
    fi
done
RUN_DIR="${QQW_RUN_DIR:-$ROOT/run}"
PID_FILE="$RUN_DIR/qqwatchdog.pid"
BACKGROUND_LOG="$RUN_DIR/qqwatchdog.log"
if [ "$command" = "run" ] && [ "$demo" = 0 ]; then
    missing=()
    # The app id may also come from --app-id or the config file ([qq] app_id; the watchdog checks that).
    [ -n "${QQ_APP_ID:-}" ] || [ "$app_id_flag" = 1 ] || [ "$config_flag" = 1 ] || missing+=(QQ_APP_ID)
    [ -n "${QQ_APP_SECRET:-}" ] || missing+=(QQ_APP_SECRET)
    if [ ${#missing[@]} -gt 0 ]; then
        names="${missing[0]}${missing[1]:+ and ${missing[1]}}"
        fail $EX_CONFIG "$names not set: put the bot's credentials in the environment or in an env file (--env-file PATH: KEY=VALUE lines, chmod 600); scripts/run.sh --demo runs without them"
    fi
fi

if [ "$command" = "stop" ]; then
    cmd_stop "$@"
    exit 0
fi

# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
ensure_venv
PY="$VENV/bin/python"
cd "$ROOT"

if [ "$command" = "status" ]; then
    exec "$PY" -m watchdog status "$@"
fi
if [ "$command" = "install" ]; then
    echo "qqwatchdog: $VENV is ready ($("$PY" --version 2>&1))"
    exit 0
fi

if [ "$output" = "auto" ]; then
    if [ -t 1 ] && [ "$background" = 0 ]; then output="pretty"; else output="json"; fi
fi

if [ "$demo" = 1 ]; then
    [ "$background" = 0 ] || fail 2 "--demo runs in the foreground only"
    exec "$PY" "$ROOT/scripts/demo.py" "--$output" ${duration:+--duration "$duration"} -- "${pass[@]}"
fi

if [ "$background" = 1 ]; then
    mkdir -p "$RUN_DIR"
    stop_began=""
    if pid="$(running_pid)"; then
        [ "$restart" = 1 ] || fail $EX_LOCKED "already running (pid $pid); scripts/run.sh stop first (or restart)"
        # Everything slow (the venv, the checks) is done: only the stop and the start are left in the gap.
        # The stopping watchdog saves the session; the new one resumes it.
        stop_began="$EPOCHREALTIME"
        kill -TERM "$pid"
        waited=0
        while exists_unreaped "$pid"; do
            if ((waited >= restart_timeout * 20)); then
                echo "qqwatchdog: pid $pid still running after ${restart_timeout}s; sending SIGKILL to its process group" >&2
                kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
                sleep 0.2
                break
            fi
            sleep 0.05
            waited=$((waited + 1))
        done
        stopped_at="$EPOCHREALTIME"
        echo "qqwatchdog: restart: stopped pid $pid in $(elapsed "$stop_began" "$stopped_at")s"
    fi
    rm -f "$PID_FILE"
    # The options of this start, for `restart` (paths already absolute; the secret is never among them).
    ARGS_FILE="$RUN_DIR/qqwatchdog.args"
    saved=("${pass[@]}")
    [ -z "$env_file" ] || saved=(--env-file "$env_file" "${saved[@]}")
    log_offset=0
    [ -f "$BACKGROUND_LOG" ] && log_offset="$(stat -c %s "$BACKGROUND_LOG")"
    log_start="$log_offset"
    if [ "${QQW_LOG_FILE:-}" = "$BACKGROUND_LOG" ]; then
        unset QQW_LOG_FILE # stdout already goes there: the same lines twice would be no use
    fi
    # setsid: its own session, so no terminal's Ctrl-C or hang-up reaches it; setsid does not fork here
    # (we are no group leader) and the detached side execs, so $! is the watchdog's own pid. The watchdog
    # writes the pid file itself once it holds the run directory's lock: two starts at once give one
    # watchdog, the other refuses (73), and the pid file always names the one that runs.
    QQW_PID_FILE="$PID_FILE" setsid "$BASH" "$ROOT/scripts/run.sh" --json "${pass[@]}" \
        </dev/null >>"$BACKGROUND_LOG" 2>&1 &
    launcher=$!
    ours() { [ -f "$PID_FILE" ] && [ "$({ tr -dc '0-9' <"$PID_FILE"; } 2>/dev/null)" = "$launcher" ]; }
    for _ in $(seq 100); do # the detached side may first have to refresh the venv: up to 10 s
        ours || ! kill -0 "$launcher" 2>/dev/null && break
        sleep 0.1
    done
    # Up means its watchdog.started line, not merely alive: a start blocked before its first line (a log
    # file that blocks on open, a hung import) looks alive forever. QQW_START_WAIT: seconds (default 15).
    came_up=0
    for _ in $(seq $((${QQW_START_WAIT:-15} * 10))); do
        # grep without -q reads to the end: an early exit would SIGPIPE tail and fail the pipeline (pipefail)
        if tail -c "+$((log_start + 1))" "$BACKGROUND_LOG" 2>/dev/null | grep -F '"event": "watchdog.started"' >/dev/null; then
            came_up=1
            break
        fi
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.1
    done
    # $launcher is the watchdog's own pid (the detached side execs): it may hang before it could write
    # the pid file, so it is the one to stop.
    if [ "$came_up" = 0 ] && kill -0 "$launcher" 2>/dev/null; then
        pid="$launcher"
        echo "qqwatchdog: the background watchdog (pid $pid) did not come up within ${QQW_START_WAIT:-15}s" \
            "(no watchdog.started line); stopping it. Last lines of $BACKGROUND_LOG:" >&2
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        ours && rm -f "$PID_FILE"
        tail -c "+$((log_start + 1))" "$BACKGROUND_LOG" | tail -n 5 >&2 || true
        exit 1
    fi
    # A configuration error ends it within a second: report that here rather than leave a dead pid file.
    for _ in $(seq 15); do
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.1
    done
    if ours && pid="$(running_pid)"; then
        # Saved once it runs (a refused or failed start leaves the running one's options in place); a
        # private temporary name, so two starts at once never share it.
        (umask 077 && { [ ${#saved[@]} -eq 0 ] || printf '%s\0' "${saved[@]}"; } >"$ARGS_FILE.$$.tmp" &&
            mv -f "$ARGS_FILE.$$.tmp" "$ARGS_FILE")
        echo "qqwatchdog: started in the background, pid $pid; log: $BACKGROUND_LOG"
        if [ -n "$stop_began" ]; then
            report_restart_gap "$stop_began" "$stopped_at" "$log_offset" "$restart_wait"
        fi
        echo "qqwatchdog: scripts/run.sh status | scripts/run.sh stop | scripts/run.sh restart | python -m watchdog report $BACKGROUND_LOG*"
        exit 0
    fi
    code=0
    kill -0 "$launcher" 2>/dev/null || wait "$launcher" || code=$?
    if [ "$code" = "$EX_LOCKED" ]; then # its one line names the holder (also one not started by us)
        said="$(grep '"exitcode": 73' "$BACKGROUND_LOG" | tail -n 1 | sed -n 's/.*"message": "Cannot start: \([^"]*\)".*/\1/p')"
        fail $EX_LOCKED "refused: ${said:-already running (pid $(running_pid || echo '?'))}"
    fi
    ours && rm -f "$PID_FILE"
    echo "qqwatchdog: the background watchdog did not stay up; last lines of $BACKGROUND_LOG:" >&2
    tail -n 5 "$BACKGROUND_LOG" >&2 || true
    exit 1
fi

# QQW_PID_FILE (background mode) stays exported: the watchdog writes it once it holds the lock.
if [ "$output" = "pretty" ]; then
    # A person at a terminal: Ctrl-C reaches the whole foreground process group, so the watchdog stops
    # cleanly while the renderer (which ignores SIGINT) prints its last lines and ends at EOF; only then
    # does the prompt come back. Services and scripts get JSON, where this script execs the watchdog.
    set +e
    "$PY" -m watchdog run "${pass[@]}" | "$PY" -m watchdog pretty
    exit "${PIPESTATUS[0]}"
fi
exec "$PY" -m watchdog run "${pass[@]}"
