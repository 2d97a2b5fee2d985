#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing and we may (root + apt).
# Never fatal: the browser tests skip with a clear reason when Chromium is absent.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian chromium for the browser tests..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "could not install chromium; browser tests will skip"
fi
exit 0
