#!/usr/bin/env bash
# Installs the Debian packages qnext builds and tests with. Idempotent: skips apt when all are present.
# nodejs + npm run the server's end-to-end test (tests/server/e2e); a node/npm already on PATH
# (e.g. NodeSource's nodejs, which bundles npm and conflicts with Debian's npm) is kept. chromium is
# the browser the chat page's test drives (tests/server/webui, through puppeteer-core).
set -euo pipefail
# clang + libclang-rt-14-dev (libclang_rt.fuzzer and clang's sanitizer runtimes; Debian 12's clang
# is clang 14) build the fuzz targets (scripts/fuzz.sh); g++'s own ASan/UBSan/TSan runtimes, used by
# scripts/test.sh --sanitize, come with g++.
pkgs=(g++ cmake make pkg-config openmpi-bin libopenmpi-dev libgtest-dev libgmock-dev googletest libbenchmark-dev
      nlohmann-json3-dev libsimdjson-dev libcli11-dev libfmt-dev libutf8proc-dev libpcre2-dev libcpp-httplib-dev zlib1g-dev
      clang libclang-rt-14-dev chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
