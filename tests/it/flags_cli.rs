//! Flag spellings: `--format` is a format and `-o/--output` a file in every command; the
//! old `--output json|text` keeps working for one release, with a warning.

use crate::common::{netsec, s};

#[test]
fn output_names_a_file_and_the_old_format_spelling_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let list = |extra: &[&str]| {
        let mut args = vec!["registry", "list", "--state-dir", s(&state)];
        args.extend_from_slice(extra);
        netsec(&args).expect_code(0)
    };

    let current = list(&["--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&current.stdout).unwrap();
    assert!(listed.is_array(), "{}", current.stdout);
    assert!(!current.stderr.contains("deprecated"), "{}", current.stderr);

    // The old spelling: same bytes on stdout, and a warning naming the new one.
    let old = list(&["--output", "json"]);
    assert_eq!(old.stdout, current.stdout);
    assert!(
        old.stderr
            .contains("`--output json` is deprecated: use `--format json`"),
        "{}",
        old.stderr
    );

    // Any other value is a path: the result goes there, not to stdout.
    let file = dir.path().join("models.json");
    for flag in ["-o", "--output"] {
        let run = list(&["--format", "json", flag, s(&file)]);
        assert_eq!(run.stdout, "", "{flag}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            current.stdout,
            "{flag}"
        );
        std::fs::remove_file(&file).unwrap();
    }
}
