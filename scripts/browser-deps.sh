#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (tests/serve/test_browser.py) when it is missing and we may:
# as root, or through passwordless sudo, with apt-get. Playwright's own browser download is never used.
# Never fatal: the browser tests skip with a clear reason when Chromium is absent.
set -u
if [ -x /usr/bin/chromium ] || [ -n "${GEMID_CHROMIUM:-}" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser-deps: no apt-get here; install Chromium yourself (or set GEMID_CHROMIUM); browser tests will skip"
  exit 0
fi
if [ "$(id -u)" = "0" ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "browser-deps: not root and no passwordless sudo; run 'apt-get install chromium' as root; browser tests will skip"
  exit 0
fi
echo "browser-deps: installing Debian's chromium for the browser tests..."
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; then
  echo "browser-deps: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium installed')"
else
  echo "browser-deps: could not install chromium; browser tests will skip"
fi
exit 0
