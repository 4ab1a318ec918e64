//! The generated tables are what their generators make of the crate sources this build
//! uses: regenerating from the same sources changes nothing. A k8s-openapi or k8s-pb upgrade
//! that changes a merge strategy or a protobuf field fails here until the table is
//! regenerated (the command is in the failure message).

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The source directory of a dependency, as `cargo metadata` reports it.
fn package_dir(name: &str) -> PathBuf {
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("running rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc names its host");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // This platform's dependencies only: the others need not be downloaded.
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(workspace())
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let manifest = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .and_then(|p| p["manifest_path"].as_str())
        .unwrap_or_else(|| panic!("{name} is not a dependency"));
    Path::new(manifest)
        .parent()
        .expect("a manifest has a directory")
        .to_owned()
}

fn regenerate(script: &str, args: &[&Path], table: &str) {
    let out = Command::new("python3")
        .arg(workspace().join(script))
        .args(args)
        .output()
        .expect("running python3 (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let current = std::fs::read_to_string(workspace().join(table)).expect("reading the table");
    let fresh = String::from_utf8(out.stdout).expect("UTF-8");
    let args: Vec<String> = args.iter().map(|a| a.display().to_string()).collect();
    assert!(
        current == fresh,
        "{table} is stale: run `python3 {script} {} > {table}`",
        args.join(" ")
    );
}

#[test]
fn the_apply_schema_table_is_current() {
    let src = package_dir("k8s-openapi").join("src/v1_33");
    regenerate(
        "tools/gen_apply_schema.py",
        &[&src],
        "crates/skiff-api/src/apply/schema_table.rs",
    );
}

#[test]
fn the_protobuf_schema_table_is_current() {
    let src = package_dir("k8s-pb").join("src");
    let openapi = package_dir("k8s-openapi").join("src");
    regenerate(
        "tools/gen_proto_schema.py",
        &[&src, Path::new("--openapi"), &openapi],
        "crates/skiff-api/src/protobuf/schema.rs",
    );
}
