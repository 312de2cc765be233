//! Gunzip through ISA-L (Intel's igzip: about twice zlib-rs's inflate speed
//! here) when its headers and library are installed (Debian/Ubuntu:
//! `libisal-dev`); otherwise through flate2 (zlib-rs). `DYNOLAKE_NO_ISAL=1`
//! builds without it even when it is there.

fn main() {
    println!("cargo::rerun-if-changed=src/read/isal.c");
    println!("cargo::rerun-if-env-changed=DYNOLAKE_NO_ISAL");
    println!("cargo::rustc-check-cfg=cfg(isal)");
    if std::env::var_os("DYNOLAKE_NO_ISAL").is_some_and(|v| !v.is_empty() && v != "0") {
        return;
    }
    let built =
        cc::Build::new().file("src/read/isal.c").opt_level(2).cargo_warnings(false).try_compile("dynolake_isal");
    match built {
        Ok(()) => {
            println!("cargo::rustc-link-lib=dylib=isal");
            println!("cargo::rustc-cfg=isal");
        }
        Err(_) => println!(
            "cargo::warning=ISA-L not found (Debian/Ubuntu: apt install libisal-dev): gunzip uses zlib-rs, about half the speed"
        ),
    }
}
