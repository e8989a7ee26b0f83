#!/usr/bin/env bash
# System packages cardtrace uses beside Python: poppler-utils (pdftoppm, pdftotext)
# to check evidence-package PDFs, a CJK font for their Chinese text, and Debian's
# chromium for the real-browser tests (tests/browser/, driven by Playwright).
# Debian/Ubuntu; needs root (or sudo). Safe to run again.
set -euo pipefail
need=()
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ "${#need[@]}" -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
