#!/bin/sh
# The C compiler driver keepd is linked with, plus a layout: when the
# release (or profiling) `keepd` binary is linked by LLD, the functions that
# start-up, the idle daemon and the common requests run are placed next to
# each other at the start of .text (daemon/link/order.txt, made by
# daemon/link/profile.py), so the pages the kernel maps for them are few:
# at idle keepd keeps resident what idle runs, not 64 KiB around every
# function it ever touched. Any other link passes through unchanged.
#
# The list names functions as demangled, without what each build makes anew
# (`keepd::main`, `<alloc::raw_vec::RawVec<u8>>::grow_one`, `sqlite3VdbeExec`);
# the symbols of this link that match are written to a symbol-ordering file
# in the list's order. A name the list has and this build lacks is skipped;
# a function the list lacks goes after, as before.
#
# Env: KEEPD_LINK_CC (the driver; default cc), KEEPD_LINK_ORDER=0 (off).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cc=${KEEPD_LINK_CC:-cc}

out= lld= prev=
for a in "$@"; do
    [ "$prev" = -o ] && out=$a
    case "$a" in -fuse-ld=lld) lld=1 ;; esac
    prev=$a
done
case "$out" in
    */release/deps/keepd-*|*/profiling/deps/keepd-*) ;;
    *) lld= ;;
esac
if [ -z "$lld" ] || [ "${KEEPD_LINK_ORDER:-1}" = 0 ] || [ ! -s "$here/order.txt" ]; then
    exec "$cc" "$@"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Every function defined in the link's inputs (objects, and archives: the
# C of SQLite and ring ride in rlibs), whatever the target's architecture.
for a in "$@"; do
    case "$a" in
        *.o|*.a|*.rlib) [ -f "$a" ] && readelf -sW "$a" 2>/dev/null ;;
    esac
done | awk '$4 == "FUNC" && $7 != "UND" && NF >= 8 { print $8 }' | sort -u >"$tmp/syms"
"$here/key.sh" <"$tmp/syms" >"$tmp/keyed"
paste "$tmp/keyed" "$tmp/syms" | awk -F '\t' -v keys="$tmp/keys" '
    FNR == NR { if ($0 != "" && $0 !~ /^#/ && !($0 in rank)) rank[$0] = ++n; next }
    $1 in rank { print rank[$1] "\t" $2; if (!($1 in hit)) { hit[$1] = 1; found++ } }
    END { print found + 0 >keys }
' "$here/order.txt" - | sort -n -s -k1,1 | cut -f2 | awk '!seen[$0]++' >"$tmp/order"
"$cc" "$@" "-Wl,--symbol-ordering-file=$tmp/order" -Wl,--no-warn-symbol-ordering
# What the layout took, beside the binary (tests/bench/layout.sh reads it).
listed=$(grep -vc '^#' "$here/order.txt" || true)
printf 'found %s of the %s functions listed in daemon/link/order.txt; placed %s first\n' \
    "$(cat "$tmp/keys")" "$listed" "$(wc -l <"$tmp/order")" >"$out.layout"
