//! Helpers shared by the codegen test files.

use std::path::Path;

use eventhub_codegen::Diagnostic;

/// Copies the directory tree `from` to `to`.
#[allow(dead_code)] // not every test file copies trees
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Asserts one diagnostic names `file` and `pointer` and its message contains `needle`.
#[allow(dead_code)] // not every test file checks diagnostics
#[track_caller]
pub(crate) fn assert_reported(diags: &[Diagnostic], file: &str, pointer: &str, needle: &str) {
    let hit = diags
        .iter()
        .any(|d| d.file == Path::new(file) && d.pointer == pointer && d.message.contains(needle));
    let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert!(
        hit,
        "expected {file}#{pointer} ~ {needle:?}, got:\n{}",
        shown.join("\n")
    );
}
