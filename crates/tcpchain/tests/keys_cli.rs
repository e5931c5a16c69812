//! `tcpchain keys` as a user runs it: real process, real files.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn tcpchain(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tcpchain")).args(args).arg("--home").arg(home).output().expect("runs")
}

#[test]
fn keys_new_list_show_and_refusals() {
    let home = std::env::temp_dir().join(format!("tcp-keys-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let created = tcpchain(&home, &["keys", "new", "alice", "--json"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let info: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let address = info["address"].as_str().unwrap().to_string();
    assert!(address.starts_with("0x") && address.len() == 42);
    let path = std::path::PathBuf::from(info["path"].as_str().unwrap());
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    // The secret never reaches the terminal.
    let secret = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&path).unwrap()).unwrap()["secret_key"].as_str().unwrap().to_string();
    for out in [&created, &tcpchain(&home, &["keys", "list"]), &tcpchain(&home, &["keys", "show", "alice"])] {
        assert!(!String::from_utf8_lossy(&out.stdout).contains(&secret));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&address));
    }
    let again = tcpchain(&home, &["keys", "new", "alice"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let missing = tcpchain(&home, &["keys", "show", "bob"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no key named \"bob\""));
    let bad = tcpchain(&home, &["keys", "new", "../x"]);
    assert_eq!(bad.status.code(), Some(2));
    std::fs::remove_dir_all(&home).unwrap();
}

/// `init` with a bad argument is refused before anything is written (issue 22, item 8): no
/// directory, no keys, no half-made network to clean up.
#[test]
fn init_with_bad_arguments_writes_nothing() {
    let dir = std::env::temp_dir().join(format!("tcp-init-refused-{}", std::process::id()));
    for bad in [
        &["--base-port", "65530"][..],
        &["--epoch-length", "0"][..],
        &["--block-interval-ms", "0"][..],
        &["--balance", "lots"][..],
        &["--validators", "0"][..],
        &["--chain-id", ""][..],
    ] {
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(env!("CARGO_BIN_EXE_tcpchain")).arg("init").args(bad).arg("--dir").arg(&dir).output().expect("runs");
        assert!(!out.status.success(), "init {bad:?} was accepted");
        assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty(), "init {bad:?} said nothing");
        assert!(!dir.exists(), "init {bad:?} wrote {}", dir.display());
    }
}
