//! Link options of the `keepd` binary.
//!
//! Relative relocations packed (`DT_RELR`; glibc ≥ 2.36 to run): the table
//! of pointers the loader adjusts at start-up (the binary is
//! position-independent) shrinks from 24 bytes per pointer to about a bit,
//! ~0.4 MB smaller on disk. x86_64: rustc links with LLD, or GNU ld ≥ 2.38.
//! aarch64: Debian 12's GNU ld ignores the option there, so it is asked for
//! only when `KEEPD_LLD_DIR` names a directory holding `ld.lld` (cross/build.sh
//! sets it when lld-16 is installed), and the binary is then linked with it.
//! The layout of its functions is daemon/link/cc.sh's (see there).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The release binary's layout (daemon/link/cc.sh, the linker driver,
    // reads the list): a new list is a new link.
    println!("cargo:rerun-if-changed=link/order.txt");
    println!("cargo:rerun-if-changed=link/cc.sh");
    println!("cargo:rerun-if-env-changed=KEEPD_LLD_DIR");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    match var("CARGO_CFG_TARGET_ARCH").as_str() {
        "x86_64" => {}
        "aarch64" => {
            let dir = var("KEEPD_LLD_DIR");
            if dir.is_empty() {
                return;
            }
            println!("cargo:rustc-link-arg-bins=-fuse-ld=lld");
            println!("cargo:rustc-link-arg-bins=-B{dir}");
        }
        _ => return,
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}
