#!/usr/bin/env bash
# setup_fonts: the TrueType fonts that `worker synth` renders its datasets with, from the Debian packages pinned
# in scripts/font-debs.txt (exact version and sha256). The .deb files are cached under
# $SENSGRID_CACHE/fonts (default ~/.cache/sensgrid/fonts) and their font files, with each package's copyright
# file as fonts/PACKAGE.copyright, extracted flat into fonts/ at the repository root (git-ignored); any other file
# there is removed, since `worker synth` draws with every font it finds. Idempotent: a second run downloads nothing
# and rewrites nothing.
#
# Sourced by scripts/setup.sh, which defines say and die; runs from the repository root. Run alone with
#   bash -c 'cd /path/to/repo && source scripts/setup-fonts.sh && setup_fonts'

# Latin: DejaVu Sans, Sans Bold and Serif. Chinese and Latin: WenQuanYi Micro Hei (sans; .ttc, proportional and
# mono) and AR PL UMing (Ming, the print serif; .ttc, four regional variants). Why Debian packages: fonts are on no
# other registry this project reaches, and these are stable in bookworm and under free licences (Bitstream Vera;
# Apache-2.0 or GPL-3+ with font exception; Arphic Public License). Droid Sans Fallback was no choice: it has no
# Latin letters.
setup_fonts() {
  local cache="${SENSGRID_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sensgrid}/fonts"
  local list=scripts/font-debs.txt
  mkdir -p "$cache" fonts
  local package version deb sha members keep=" "
  while read -r package version deb sha members; do
    case "$package" in '' | '#'*) continue ;; esac
    local path="$cache/$deb"
    if [ ! -f "$path" ] || ! echo "$sha  $path" | sha256sum --check --status; then
      fonts_download "$package" "$version" "$deb" "$cache" || die "apt-get download $package=$version failed (above)"
      echo "$sha  $path" | sha256sum --check --status ||
        die "$deb: sha256 $(sha256sum "$path" | cut -d' ' -f1), expected $sha ($list)"
    fi
    # fonts/.PACKAGE.sha256 records the .deb its files came from: with it, and every file there, nothing to do.
    local stamp="fonts/.$package.sha256" member target complete=yes
    keep+=".$package.sha256 "
    for member in $members; do
      target=$(fonts_target "$package" "$member")
      keep+="$(basename "$target") "
      [ -f "$target" ] || complete=no
    done
    [ "$complete" = yes ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sha" ] && continue
    rm -f "$stamp"
    for member in $members; do
      target=$(fonts_target "$package" "$member")
      dpkg-deb --fsys-tarfile "$path" | tar -xO "./$member" >"$target.part" ||
        die "$deb: cannot extract $member"
      mv "$target.part" "$target"
    done
    echo "$sha" >"$stamp"
  done <"$list"
  local file
  for file in fonts/* fonts/.[!.]*; do
    [ -e "$file" ] || continue
    case "$keep" in *" $(basename "$file") "*) ;; *) rm -rf "$file" ;; esac
  done
  say "fonts in $(pwd)/fonts: $(cd fonts && ls ./*.tt[fc] | sed 's|^\./||' | tr '\n' ' ')"
}

# Downloads one .deb into $4 with apt-get (from the machine's configured Debian mirror). When apt's package lists do
# not know that version yet (a fresh machine), refreshes them once, as root.
fonts_download() {
  local package=$1 version=$2 deb=$3 cache=$4 tmp
  say "downloading $package=$version"
  tmp=$(mktemp -d)
  # apt drops privileges to _apt for downloads: let it write here, or it warns.
  chmod 0777 "$tmp"
  if ! (cd "$tmp" && apt-get download --quiet=2 "$package=$version" 2>/dev/null); then
    if [ "$(id -u)" != 0 ]; then
      rm -rf "$tmp"
      say "apt does not know $package=$version: run 'apt-get update' as root, then setup again"
      return 1
    fi
    apt-get update --quiet=2 || { rm -rf "$tmp"; return 1; }
    (cd "$tmp" && apt-get download --quiet=2 "$package=$version") || { rm -rf "$tmp"; return 1; }
  fi
  [ -f "$tmp/$deb" ] || { say "apt-get download $package=$version did not produce $deb"; rm -rf "$tmp"; return 1; }
  mv "$tmp/$deb" "$cache/$deb"
  rm -rf "$tmp"
}

# Where a member of package $1's .deb goes: fonts/ and its file name, or fonts/PACKAGE.copyright for the licence.
fonts_target() {
  if [ "$(basename "$2")" = copyright ]; then echo "fonts/$1.copyright"; else echo "fonts/$(basename "$2")"; fi
}
