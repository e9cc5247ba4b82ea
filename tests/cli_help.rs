//! `--help` teaches: every command's help shows an example, and the long descriptions of the
//! commands are shown.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_stacdb")).args(args).output().expect("runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn every_command_has_long_help_with_examples() {
    let commands =
        ["init", "ingest", "get", "delete", "info", "check", "search", "count", "serve", "export"];
    let top = help(&["--help"]);
    for command in commands {
        assert!(top.contains(&format!("  {command} ")), "`stacdb --help` lists {command}");
        let long = help(&[command, "--help"]);
        assert!(long.contains("Example"), "{command} --help shows an example:\n{long}");
    }
    // The long descriptions set on the commands' arguments are not lost.
    assert!(help(&["ingest", "--help"]).contains("The catalog file is created when missing"));
    assert!(help(&["search", "--help"]).contains("Filters combine with AND"));
}

/// An error names the file and says what the system said, once.
#[test]
fn errors_name_the_file_and_the_cause_once() {
    let dir = std::env::temp_dir().join(format!("stacdb-cli-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.json");
    let out = Command::new(env!("CARGO_BIN_EXE_stacdb"))
        .arg("ingest")
        .arg(dir.join("c.stacdb"))
        .arg(&missing)
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(&missing.display().to_string()), "the file is named: {said}");
    assert_eq!(said.matches("No such file or directory").count(), 1, "the cause once: {said}");
}
