#!/usr/bin/env bash
# The OS side of `make test-browser`: Chromium (and a font) from the Debian packages, installed
# only where missing. Playwright launches this binary; it never downloads a browser of its own.
# Set MINIFUSION_CHROMIUM=/path/to/chromium to use another Chromium and skip the install.
set -euo pipefail

if [ -n "${MINIFUSION_CHROMIUM:-}" ]; then
    [ -x "$MINIFUSION_CHROMIUM" ] || { echo "MINIFUSION_CHROMIUM=$MINIFUSION_CHROMIUM is not an executable file" >&2; exit 1; }
    exit 0
fi

PACKAGES=(chromium fonts-dejavu-core)
missing=()
for package in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
    echo "test-browser needs Chromium (${missing[*]} missing) and this system has no apt-get:" >&2
    echo "install Chromium and set MINIFUSION_CHROMIUM to its binary" >&2
    exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "installing ${missing[*]} needs root: sudo apt-get install ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
fi
install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}
echo "test-browser: installing ${missing[*]} from the OS packages"
# The package lists are refreshed only when they do not know a package yet or are out of date.
if ! install; then
    "${SUDO[@]}" apt-get update -q
    install
fi
