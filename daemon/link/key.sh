#!/bin/sh
# The key of each symbol name on standard input, one per line, in order: the
# name demangled (c++filt), without what each build makes anew — crate
# disambiguators `[0123abcd…]`, a legacy Rust name's `::h…` hash, the
# `.llvm.N` suffix LTO gives a function it made local. Rust symbols are v0
# (.cargo/config.toml), so a generic function's key spells out its arguments.
# C names are their own keys. The one definition: daemon/link/cc.sh keys a
# link's symbols with it, daemon/link/profile.py the functions a profile saw.
sed 's/\.llvm\.[0-9]*$//' | c++filt | sed -E -e 's/\[[0-9a-f]{5,}\]//g' -e 's/::h[0-9a-f]{16}$//'
