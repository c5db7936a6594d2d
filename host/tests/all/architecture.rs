//! The map matches the code: ARCHITECTURE.md names every workspace member and every module of
//! the host's crates (as `name.rs` or `name/`), so a module added without a place in the map
//! fails the tests instead of drifting out of it.

use crate::support::workspace;
use std::path::Path;

/// The `members` of the workspace's Cargo.toml.
fn workspace_members() -> Vec<String> {
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let start = manifest.find("members = [").expect("a members list");
    let end = start + manifest[start..].find(']').unwrap();
    manifest[start..end]
        .lines()
        .filter_map(|line| {
            let line = line.trim().trim_end_matches(',');
            line.strip_prefix('"')?
                .strip_suffix('"')
                .map(str::to_string)
        })
        .collect()
}

/// The modules a crate's sources declare (`mod x;` and `pub mod x;`, in any file), as the file
/// names they live in: `x.rs` or `x/`.
fn declared_modules(src: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let line = line.trim();
                let declared = line
                    .strip_prefix("pub mod ")
                    .or_else(|| line.strip_prefix("pub(crate) mod "))
                    .or_else(|| line.strip_prefix("mod "));
                if let Some(name) = declared.and_then(|rest| rest.strip_suffix(';')) {
                    let module_dir = path.parent().unwrap();
                    // `name.rs` (whose submodules may sit in `name/`) or `name/mod.rs`.
                    let as_file = module_dir.join(format!("{name}.rs")).is_file();
                    let spelled = if as_file {
                        format!("{name}.rs")
                    } else {
                        format!("{name}/")
                    };
                    found.push((path.display().to_string(), spelled));
                }
            }
        }
    }
    found
}

#[test]
fn architecture_md_names_every_crate_and_every_library_module() {
    let map = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    for member in workspace_members() {
        if !map.contains(&format!("`{member}`")) && !map.contains(&format!("`{member}/`")) {
            missing.push(format!("the workspace member {member}"));
        }
        let src = workspace().join(&member).join("src");
        // The host's crates (the libraries and the binary): every module has its place in the
        // map. Components, test components and the benchmark's native service are named as
        // members; their insides are theirs.
        if !(member.starts_with("crates/") || member == "host") {
            continue;
        }
        for (file, module) in declared_modules(&src) {
            if module == "tests.rs" || module == "tests/" {
                continue;
            }
            if !map.contains(&format!("`{module}`")) {
                missing.push(format!("{module} (declared in {file})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name: {}",
        missing.join(", ")
    );
}
