#!/usr/bin/env bash
# The one test command (`npm test`): installs the system tools the tests drive for real (Chromium,
# OpenSSH server and clients) when they are missing, then lints, type-checks, builds and runs every test
# file with Node's test runner, then the soak (`npm run soak`: mixed load through two replicas, RSS and
# descriptor curve). A tool that cannot be installed is a failure, never a skip.
#
# Time limits, so a hang fails the run with a message instead of eating the CI budget (CI: 90 minutes;
# the test files take about 8 minutes on an idle machine, the soak SOAK_MINUTES plus about one):
#   TEST_FILE_TIMEOUT_MS  one test file (and each test in it) may run this long (default 300000 = 5 min;
#                         the slowest file takes about 1 min on a loaded 2-core machine)
#   TEST_RUN_TIMEOUT      the whole test-runner step (default 40m, a `timeout` duration)
#   SOAK_MINUTES          length of the soak (default 10; 0 skips it, e.g. while iterating locally)
# Extra arguments go to `node --test` (e.g. `npm test -- --test-name-pattern=ssh`).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "test: FAILED: $*" >&2
  exit 1
}

# Everything the tests run: browsers, sshd and its clients, and what creates the sshd test user.
need_pkgs=()
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
[ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
for tool in ssh scp sftp ssh-keygen; do command -v "$tool" >/dev/null 2>&1 || { need_pkgs+=(openssh-client); break; }; done
command -v flock >/dev/null 2>&1 || need_pkgs+=(util-linux)
# openssl issues the private CA of the "GitLab behind an internal CA" tests (test/support/private-ca.ts).
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "test: installing missing system packages: ${need_pkgs[*]}"
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    fail "the tests need ${need_pkgs[*]} (Debian packages); install them as root with apt-get"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_log=$(mktemp /tmp/test-apt.XXXXXX.log)
  # Quiet when it works; the whole log when it does not. Three tries: a mirror hiccup is not a test failure.
  installed=false
  for attempt in 1 2 3; do
    echo "--- attempt $attempt" >>"$apt_log"
    if { apt-get update -q && apt-get install -y -q --no-install-recommends "${need_pkgs[@]}"; } >>"$apt_log" 2>&1; then
      installed=true
      break
    fi
    [ "$attempt" = 3 ] || sleep 10
  done
  if [ "$installed" != true ]; then
    cat "$apt_log" >&2
    fail "could not install ${need_pkgs[*]} (apt log above)"
  fi
  rm -f "$apt_log"
fi
for tool in chromium /usr/sbin/sshd ssh scp sftp ssh-keygen flock openssl getent useradd passwd; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is still missing"
done
# The SSH tests run a real sshd that logs in as a dedicated local user (test/support/sshd.ts), which
# only root can create and switch to.
[ "$(id -u)" = 0 ] || fail "the SSH tests start sshd and create a local test user: run the tests as root (e.g. in a container)"

echo "test: lint"
npx eslint .
echo "test: typecheck"
npx tsc -p tsconfig.json
echo "test: build"
npm run --silent build

shopt -s nullglob
files=(test/proxy/*.test.ts test/infra/*.test.ts)
[ ${#files[@]} -gt 0 ] || fail "no test files found"

file_timeout_ms=${TEST_FILE_TIMEOUT_MS:-300000}
run_timeout=${TEST_RUN_TIMEOUT:-40m}
echo "test: ${#files[@]} test files (each limited to $((file_timeout_ms / 1000)) s, all together to $run_timeout)"
# --test-timeout limits each file as a whole and each test in it; a file that overruns is reported as
# "test timed out" by name and the run goes on with the next file. The spec reporter ends with the
# runner's summary (tests, pass, fail, cancelled) and lists every failure again; the exit status is
# non-zero when any file fails.
status=0
timeout --kill-after=30s "$run_timeout" \
  node --import tsx --test --test-reporter=spec --test-timeout="$file_timeout_ms" "$@" "${files[@]}" || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  fail "the test run did not finish within $run_timeout and was stopped (a hanging test? see the last file above)"
fi
[ "$status" = 0 ] || fail "node --test exited with status $status (failures are listed above under 'failing tests')"
echo "test: all test files passed"

# The soak fails on any error, on RSS still growing (last minute above 1.5 × minute 3) or on descriptors
# not back to idle once its clients are closed; it prints the curve once a minute.
soak_minutes=${SOAK_MINUTES:-10}
if [ "$soak_minutes" = 0 ]; then
  echo "test: soak skipped (SOAK_MINUTES=0)"
else
  echo "test: soak: $soak_minutes min of mixed HTTP/WebSocket/SSH load through two replicas (npm run soak)"
  status=0
  timeout --kill-after=30s "$((soak_minutes + 5))m" npm run --silent soak -- --minutes "$soak_minutes" || status=$?
  if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    fail "the soak did not finish within $((soak_minutes + 5)) minutes and was stopped"
  fi
  [ "$status" = 0 ] || fail "the soak failed (the 'soak: FAILED' lines above say why)"
  echo "test: soak passed"
fi
