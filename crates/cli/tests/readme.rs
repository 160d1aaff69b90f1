//! README.md shows `examples/quickstart.rs` verbatim; keep them the same.

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
