//! `tcpchain sim` as a user runs it: a real process, its output and its exit code.

use std::process::{Command, Output};

fn tcpchain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcpchain")).args(args).output().expect("tcpchain runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn sim_under_all_faults_reports_zero_violations() {
    let out = tcpchain(&["sim", "--validators", "4", "--byzantine", "1", "--heights", "20", "--seeds", "12", "--faults", "all"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for line in
        ["seeds run: 12", "safety violations: 0", "liveness failures: 0", "beacon failures: 0", "group key changed: no", "seeds failed: 0"]
    {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    let decided: u64 =
        text.lines().find_map(|l| l.strip_prefix("heights decided: ")).and_then(|l| l.split(' ').next()).unwrap().parse().unwrap();
    assert!(decided >= 12 * 20, "{text}");
}

#[test]
fn one_seed_replays_with_the_same_output() {
    let args = ["sim", "--validators", "4", "--byzantine", "1", "--heights", "10", "--faults", "all", "--seed", "5"];
    let (a, b) = (stdout(&tcpchain(&args)), stdout(&tcpchain(&args)));
    let stable = |s: &str| s.lines().filter(|l| !l.starts_with("virtual time")).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(stable(&a), stable(&b));
    assert!(a.contains("seeds run: 1"));
}

#[test]
fn more_than_f_byzantine_fails_with_a_replay_command() {
    let out = tcpchain(&[
        "sim",
        "--validators",
        "4",
        "--byzantine",
        "2",
        "--heights",
        "20",
        "--seeds",
        "10",
        "--faults",
        "byzantine",
        "--behaviour",
        "equivocate",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("SAFETY VIOLATION: agreement"), "{text}");
    assert!(text.contains("replay with:\n  cargo run --release -p tcpchain -- sim --validators 4 --byzantine 2"), "{text}");
    assert!(!text.contains("safety violations: 0"), "{text}");
}

#[test]
fn bad_arguments_get_a_clear_error() {
    for (args, expected) in [
        (vec!["sim", "--faults", "fire"], "unknown fault \"fire\""),
        (vec!["sim", "--validators", "0"], "--validators must be between 1 and 256"),
        (vec!["sim", "--validators", "4", "--byzantine", "5"], "--byzantine (5) cannot exceed --validators (4)"),
        (vec!["sim", "--heights", "0"], "--heights must be at least 1"),
        (vec!["sim", "--behaviour", "sneaky"], "unknown behaviour \"sneaky\""),
        (vec!["sim", "--validators", "many"], "invalid value 'many'"),
    ] {
        let out = tcpchain(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn beacon_verify_checks_a_committed_sigma_and_refuses_a_wrong_one() {
    let out = tcpchain(&["sim", "--validators", "4", "--heights", "15", "--seeds", "1", "--faults", "none"]);
    let text = stdout(&out);
    let command = text.lines().find_map(|l| l.trim().strip_prefix("tcpchain ")).unwrap_or_else(|| panic!("no verify command in:\n{text}"));
    let args: Vec<&str> = command.split_whitespace().collect();
    let good = tcpchain(&args);
    assert!(good.status.success(), "{}", stdout(&good));
    assert!(stdout(&good).contains("verifies against the group key"));
    // Another height, or a flipped signature byte, does not verify.
    let mut wrong_height = args.clone();
    let h = wrong_height.iter().position(|a| *a == "--height").unwrap() + 1;
    wrong_height[h] = "123456";
    let bad = tcpchain(&wrong_height);
    assert_eq!(bad.status.code(), Some(1), "{}", stdout(&bad));
    assert!(stdout(&bad).contains("does NOT verify"));
    // Malformed input is a usage error with a reason, not a crash.
    let garbage =
        tcpchain(&["beacon", "verify", "--chain-id", "c", "--height", "1", "--group-key", "zz", "--signature", "00", "--seed", "00"]);
    assert_eq!(garbage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("--group-key"));
}
