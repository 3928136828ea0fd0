//! The pipeline demo as `make demo` runs it (in-memory transport): it accounts for every
//! URL, and its exit status says so only when that is true.

mod pipeline_support;

use std::process::Command;

fn demo(args: &[&str]) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("ks-demo-mem-{}", uuid::Uuid::new_v4().simple()));
    Command::new(pipeline_support::example_binary("pipeline"))
        .args(args)
        .arg("--out-dir")
        .arg(&dir)
        .env_remove("KAFKA_BROKERS")
        .env_remove("KAFKA_TRANSPORT")
        .output()
        .expect("running the demo")
}

#[test]
fn the_default_demo_accounts_for_every_url_on_the_memory_transport() {
    let out = demo(&["--urls", "200"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("on the memory transport"), "{stdout}");
    assert!(
        stdout.contains("| unaccounted                |      0 |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("kafka_sync_messages_sent_total{topic=\"scraping-tasks\"} 200"),
        "{stdout}"
    );
}

#[test]
fn urls_still_in_flight_when_the_drain_ends_make_it_exit_1() {
    // Every URL times out twice and waits 200 ms on the retry topic: with no time to
    // drain, the last ones cannot have ended.
    let out = demo(&[
        "--urls",
        "300",
        "--transient-rate",
        "1",
        "--permanent-rate",
        "0",
        "--drain-timeout",
        "0",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("UNACCOUNTED: scheduled 300 != stored + dead-lettered"),
        "{stdout}"
    );
}

#[test]
fn bad_flags_are_refused_by_name() {
    let out = demo(&["--permanent-rate", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--permanent-rate 2: must be between 0 and 1"));
    let out = demo(&["--urls", "many"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--urls"));
}
