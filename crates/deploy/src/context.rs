//! A docker build context as docker sends it: every file under the context directory, less
//! what its `.dockerignore` excludes, and a short hash of their names and contents that names
//! the image built from it (an unchanged context is not rebuilt; any change, committed or not,
//! is).
//!
//! `.dockerignore` patterns are matched as docker matches them: relative to the context's root
//! (`target` is `./target` only, not `a/target`), `**` for any number of directories, `!` to
//! let a path back in, later lines winning. The matching is the `ignore` crate's (gitignore's
//! glob syntax) with every pattern anchored at the root, which is where docker's rules differ
//! from git's. One difference stays: git cannot let a file back in below an excluded
//! directory, docker can; no context of this project does that.

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The files docker would send from the context `dir`, as sorted `./`-relative paths.
pub fn context_files(dir: &Path) -> Result<Vec<String>, String> {
    let ignored = dockerignore(dir)?;
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let absolute = dir.join(&relative);
        let entries = std::fs::read_dir(&absolute)
            .map_err(|e| format!("cannot list {}: {e}", absolute.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", absolute.display()))?;
            let path = relative.join(entry.file_name());
            let kind = entry
                .file_type()
                .map_err(|e| format!("cannot read {}: {e}", dir.join(&path).display()))?;
            if ignored.matched(&path, kind.is_dir()).is_ignore() {
                continue;
            }
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let name = path
                    .to_str()
                    .ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
                files.push(format!("./{name}"));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The first 12 hex digits of the SHA-256 over one line per file of the context, in sorted
/// order: `<SHA-256 of the file>  ./<path>` (what `sha256sum` prints for it).
pub fn context_hash(dir: &Path) -> Result<String, String> {
    let mut listing = Sha256::new();
    for file in context_files(dir)? {
        let path = dir.join(&file[2..]);
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        listing.update(format!("{}  {file}\n", hex(&Sha256::digest(&bytes))));
    }
    Ok(hex(&listing.finalize())[..12].to_string())
}

/// The context's `.dockerignore`, each pattern anchored at the root as docker reads it.
fn dockerignore(dir: &Path) -> Result<Gitignore, String> {
    let mut builder = GitignoreBuilder::new(dir);
    let file = dir.join(".dockerignore");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(format!("cannot read {}: {error}", file.display())),
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negated, pattern) = match line.strip_prefix('!') {
            Some(rest) => ("!", rest.trim()),
            None => ("", line),
        };
        let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
        builder
            .add_line(None, &format!("{negated}/{pattern}"))
            .map_err(|e| format!("{}: {line:?}: {e}", file.display()))?;
    }
    builder
        .build()
        .map_err(|e| format!("{}: {e}", file.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(files: &[&str], ignore: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, file.as_bytes()).unwrap();
        }
        std::fs::write(dir.path().join(".dockerignore"), ignore).unwrap();
        dir
    }

    #[test]
    fn patterns_are_anchored_at_the_root_as_docker_reads_them() {
        let dir = context(
            &[
                "target/a",
                "src/target/b",
                "web/node_modules/c",
                "node_modules/d",
                "notes.md",
                "keep.md",
                "docs/x.tmp",
                "main.rs",
            ],
            "# build output\ntarget\n**/node_modules\n*.md\n!keep.md\ndocs/*.tmp\n",
        );
        assert_eq!(
            context_files(dir.path()).unwrap(),
            [
                "./.dockerignore",
                "./keep.md",
                "./main.rs",
                "./src/target/b"
            ]
        );
    }

    #[test]
    fn the_hash_follows_names_and_contents_and_nothing_ignored() {
        let dir = context(&["a", "skip/b"], "skip\n");
        let first = context_hash(dir.path()).unwrap();
        assert_eq!(first.len(), 12);
        std::fs::write(dir.path().join("skip/b"), "changed").unwrap();
        assert_eq!(context_hash(dir.path()).unwrap(), first);
        std::fs::write(dir.path().join("a"), "changed").unwrap();
        let second = context_hash(dir.path()).unwrap();
        assert_ne!(second, first);
        std::fs::rename(dir.path().join("a"), dir.path().join("renamed")).unwrap();
        assert_ne!(context_hash(dir.path()).unwrap(), second);
    }

    #[test]
    fn the_hash_is_the_listing_sha256sum_prints() {
        // sha256sum of one file "x" containing "x", then of that line: what the scripts
        // computed in bash before, so image tags stay the same for the same context.
        let dir = context(&["x"], "");
        std::fs::remove_file(dir.path().join(".dockerignore")).unwrap();
        let line = format!("{}  ./x\n", hex(&Sha256::digest(b"x")));
        assert_eq!(
            context_hash(dir.path()).unwrap(),
            hex(&Sha256::digest(line.as_bytes()))[..12]
        );
    }
}
