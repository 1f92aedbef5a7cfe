#!/usr/bin/env bash
# The one test command (`npm test`): installs the system tools the tests drive for real (Chromium,
# OpenSSH server and clients, sshpass) when they are missing, then lints, type-checks, builds and runs
# every test file with Node's test runner. A tool that cannot be installed is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
[ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
for tool in ssh scp sftp; do command -v "$tool" >/dev/null 2>&1 || { need_pkgs+=(openssh-client); break; }; done
command -v sshpass >/dev/null 2>&1 || need_pkgs+=(sshpass)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "test: installing missing system packages: ${need_pkgs[*]}"
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test: FAILED: the tests need ${need_pkgs[*]} (Debian packages); install them as root with apt-get" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if ! apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/tmp/test-apt.log 2>&1; then
    cat /tmp/test-apt.log >&2
    echo "test: FAILED: could not install ${need_pkgs[*]}" >&2
    exit 1
  fi
fi
for tool in chromium /usr/sbin/sshd ssh scp sftp sshpass; do
  command -v "$tool" >/dev/null 2>&1 || { echo "test: FAILED: $tool is still missing" >&2; exit 1; }
done

echo "test: lint"; npx eslint .
echo "test: typecheck"; npx tsc -p tsconfig.json
echo "test: build"; npm run --silent build

shopt -s nullglob
files=(test/proxy/*.test.ts test/infra/*.test.ts)
if [ ${#files[@]} -eq 0 ]; then echo "test: FAILED: no test files found" >&2; exit 1; fi
exec node --import tsx --test --test-reporter=spec "$@" "${files[@]}"
