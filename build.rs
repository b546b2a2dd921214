//! Fetches the dashboard's browser libraries (Leaflet, Leaflet.markercluster, uPlot, pinned in
//! package.json / package-lock.json) with `npm ci` when node_modules lacks them, and copies the
//! files the binary embeds into OUT_DIR/web. Nothing third-party is kept in the repository.
//! Without npm the build still succeeds: the map page then says what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (file under node_modules, name under /assets/)
const ASSETS: &[(&str, &str)] = &[
    ("leaflet/dist/leaflet.js", "leaflet.js"),
    ("leaflet/dist/leaflet.css", "leaflet.css"),
    (
        "leaflet.markercluster/dist/leaflet.markercluster.js",
        "leaflet.markercluster.js",
    ),
    (
        "leaflet.markercluster/dist/MarkerCluster.css",
        "MarkerCluster.css",
    ),
    (
        "leaflet.markercluster/dist/MarkerCluster.Default.css",
        "MarkerCluster.Default.css",
    ),
    ("uplot/dist/uPlot.iife.min.js", "uplot.js"),
    ("uplot/dist/uPlot.min.css", "uplot.css"),
];

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("web");
    std::fs::create_dir_all(&out).expect("creating OUT_DIR/web");
    println!("cargo:rerun-if-changed=package-lock.json");
    println!("cargo:rerun-if-changed=node_modules/leaflet/package.json");
    println!("cargo:rerun-if-changed=node_modules/leaflet.markercluster/package.json");
    println!("cargo:rerun-if-changed=node_modules/uplot/package.json");
    let modules = root.join("node_modules");
    if !have_all(&modules) {
        npm_ci(&root);
    }
    let complete = have_all(&modules);
    for (from, to) in ASSETS {
        let source = modules.join(from);
        let target = out.join(to);
        if complete {
            std::fs::copy(&source, &target)
                .unwrap_or_else(|e| panic!("copying {}: {e}", source.display()));
        } else {
            let placeholder = if to.ends_with(".js") {
                "console.error('seguard was built without its map libraries: install Node.js and npm, then rebuild (build.rs runs npm ci)'); window.SEGUARD_NO_LEAFLET = true;\n"
            } else {
                "/* map libraries missing at build time */\n"
            };
            std::fs::write(&target, placeholder).expect("writing placeholder asset");
        }
    }
}

fn have_all(modules: &Path) -> bool {
    ASSETS.iter().all(|(from, _)| modules.join(from).is_file())
}

fn npm_ci(root: &Path) {
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
        .current_dir(root)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => println!("cargo:warning=`npm ci` failed ({s}); the dashboard map will show a notice instead of Leaflet. Run `npm ci` in {} and rebuild.", root.display()),
        Err(e) => println!(
            "cargo:warning=npm is not available ({e}); the dashboard map will show a notice instead of Leaflet. \
             Install Node.js and npm (Debian: apt-get install npm), run `npm ci` in {}, and rebuild.",
            root.display()
        ),
    }
}
