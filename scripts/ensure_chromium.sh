#!/usr/bin/env sh
# Test set-up: make Debian's headless-capable `chromium` available for the report's browser test.
# Never fails: without root or apt the browser test is skipped and says why.
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the report's browser test (apt-get)..."
  # Package lists may be stale on a fresh machine: refresh them once if the first try fails.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; } \
    || echo "could not install chromium; the browser test will be skipped"
else
  echo "chromium not found and cannot be installed here (needs root and apt); the browser test will be skipped"
fi
exit 0
