//! README.md shows `examples/quickstart.rs` verbatim; keep them the same.
#![allow(clippy::unwrap_used)]

#[test]
fn readme_shows_the_quickstart_example_verbatim() {
    let readme = include_str!("../../../README.md");
    let example = include_str!("../examples/quickstart.rs");
    let body: String = example
        .lines()
        .skip_while(|line| line.starts_with("//!") || line.starts_with("#!"))
        .skip_while(|line| line.is_empty())
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(
        readme.contains(&body),
        "README.md's example differs from examples/quickstart.rs"
    );
}

#[test]
fn readme_starts_with_the_two_newcomer_commands() {
    let readme = include_str!("../../../README.md");
    let block: Vec<&str> = readme
        .split("```")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        block,
        [
            "cargo run -p jobprep-cli -- demo",
            "cargo test --workspace --all-features"
        ]
    );
}

/// Every README, every page of `docs/` (what moved out of README.md) and every doc
/// comment in the crates' sources: what users copy.
fn documentation() -> Vec<(std::path::PathBuf, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    for page in std::fs::read_dir(root.join("docs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if page.path().extension().is_some_and(|e| e == "md") {
            files.push(page.path());
        }
    }
    for krate in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        files.push(krate.path().join("README.md"));
        let mut folders = vec![krate.path().join("src")];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
    }
    files
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let docs: String = if path.extension().is_some_and(|e| e == "md") {
                text
            } else {
                text.lines()
                    .map(str::trim_start)
                    .filter(|line| line.starts_with("///") || line.starts_with("//!"))
                    .map(|line| format!("{line}\n"))
                    .collect()
            };
            Some((path, docs))
        })
        .collect()
}

#[test]
fn documented_writes_never_drop_their_cache_tags() {
    let mut offenders = Vec::new();
    for (path, docs) in documentation() {
        for line in docs.lines() {
            // A write closure whose tag list is ignored: copied, it silently drops the
            // tags the product revalidates. Examples go through the use cases, or
            // push the tags of what they wrote.
            if line.contains("write(|conn, _|") || line.contains("write(|conn, _tags|") {
                offenders.push(format!("{}: {}", path.display(), line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "examples that drop cache tags:\n{}",
        offenders.join("\n")
    );
}

/// The functions a feature crate's README names, outside its code blocks (which are
/// doctests, so the compiler checks them): `name(...)` anywhere, and the first column
/// of a table of use cases.
fn functions_named(readme: &str) -> Vec<String> {
    let prose = readme
        .split("```")
        .step_by(2)
        .collect::<Vec<_>>()
        .join("\n");
    let is_name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    let mut names = Vec::new();
    let mut use_case_table = false;
    let mut previous = "";
    for line in prose.lines() {
        let first_cell = line
            .strip_prefix('|')
            .and_then(|rest| rest.split('|').next())
            .unwrap_or("");
        if !previous.starts_with('|') {
            use_case_table = first_cell.trim() == "use case";
        }
        previous = line;
        for span in line.split('`').skip(1).step_by(2) {
            if let Some((name, _)) = span.split_once('(') {
                if is_name(name) {
                    names.push(name.to_owned());
                }
            } else if use_case_table && is_name(span) && first_cell.contains(&format!("`{span}`")) {
                names.push(span.to_owned());
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn feature_crate_readmes_name_only_functions_the_crate_has() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut missing = Vec::new();
    for krate in ["users", "job_infos", "interviews", "questions"] {
        let dir = root.join("crates").join(krate);
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        let source = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        // Builder methods of the forms a crate re-exports live in the repository crate.
        let forms = std::fs::read_to_string(root.join(format!("crates/repo/src/{krate}.rs")))
            .unwrap_or_default();
        let names = functions_named(&readme);
        assert!(!names.is_empty(), "{krate}: no function named");
        for name in names {
            let defined = |code: &str| {
                code.contains(&format!("fn {name}(")) || code.contains(&format!("fn {name}<"))
            };
            if !defined(&source) && !defined(&forms) {
                missing.push(format!("crates/{krate}/README.md names `{name}`"));
            }
        }
    }
    assert!(missing.is_empty(), "no such function: {missing:#?}");
}
