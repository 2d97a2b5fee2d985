#!/usr/bin/env bash
# Installs what the browser tests (tests/serve/test_browser.py) need from Debian when it is missing and we may
# (as root, or through passwordless sudo, with apt-get): Debian's Chromium, and fonts-noto-core for the Urdu
# page (Noto Nastaliq Urdu, Noto Naskh Arabic; the page never fetches a font at run time). Playwright's own
# browser download is never used. Never fatal: the browser tests skip with a clear reason when Chromium is
# absent, and the Urdu page falls back to whatever Arabic-script font the system has.
set -u
NASTALIQ=/usr/share/fonts/truetype/noto/NotoNastaliqUrdu-Regular.ttf
want=()
if [ ! -x /usr/bin/chromium ] && [ -z "${GEMID_CHROMIUM:-}" ]; then
  want+=(chromium)
fi
if [ ! -f "$NASTALIQ" ]; then
  want+=(fonts-noto-core)
fi
if [ ${#want[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser-deps: no apt-get here; install ${want[*]} yourself (or set GEMID_CHROMIUM); browser tests may skip"
  exit 0
fi
if [ "$(id -u)" = "0" ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "browser-deps: not root and no passwordless sudo; run 'apt-get install ${want[*]}' as root; browser tests may skip"
  exit 0
fi
echo "browser-deps: installing Debian's ${want[*]} for the browser tests..."
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null; then
  echo "browser-deps: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium installed')"
  [ -f "$NASTALIQ" ] && echo "browser-deps: Noto Nastaliq Urdu installed"
else
  echo "browser-deps: could not install ${want[*]}; browser tests may skip"
fi
exit 0
