//! The `kafka-sync` CLI against the real broker, run as a user runs it: offsets and lag
//! after producing N and committing M, the dead-letter queue listed and replayed (each
//! replayed message handled once), produce refusing a bad line by number, `--json` that
//! parses, and errors that name what was wrong within their bound.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_sync::domain::{HandlerError, KafkaMessage, MessageType};
use kafka_sync::transport::{ModernTransport, SubscribeOptions, Transport};
use kafka_sync::{Config, Kafka, StartOffset, TransportKind};

fn cli_at(brokers: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-sync"))
        .args(["--brokers", brokers])
        .args(args)
        .env_remove("KAFKA_BROKERS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kafka-sync");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn cli(args: &[&str], stdin: Option<&str>) -> Output {
    cli_at(&common::brokers().join(","), args, stdin)
}

fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = cli(args, stdin);
    assert!(
        out.status.success(),
        "kafka-sync {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_in(args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(&all, stdin);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("--json output of {args:?} is not JSON ({e}): {text}"))
}

fn json(args: &[&str]) -> serde_json::Value {
    json_in(args, None)
}

fn err(args: &[&str], stdin: Option<&str>) -> String {
    let out = cli(args, stdin);
    assert!(!out.status.success(), "kafka-sync {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn config() -> Config {
    let mut c = Config {
        transport: TransportKind::Modern,
        ..Config::default()
    };
    c.brokers = common::brokers();
    c.group_id = format!("ks-cli-group-{}", uuid::Uuid::new_v4().simple());
    c.consumer.start_offset = StartOffset::Earliest;
    c.consumer.max_wait = Duration::from_millis(100);
    c.consumer.min_bytes = 1;
    c
}

fn payload_lines(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"url\":\"https://a.example/{i}\"}}\n"))
        .collect()
}

fn latest(offsets: &serde_json::Value) -> BTreeMap<i64, i64> {
    offsets["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_i64().unwrap(),
                p["latest"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn offsets_and_lag_show_what_was_produced_and_committed() {
    let topic = common::random_topic("cli-lag");
    let created = json(&[
        "topic",
        "create",
        &topic,
        "--partitions",
        "3",
        "--replication",
        "1",
    ]);
    assert_eq!(
        (created["created"].as_bool(), created["partitions"].as_i64()),
        (Some(true), Some(3))
    );
    let again = err(&["topic", "create", &topic], None);
    assert!(
        again.contains("already exists with 3 partition(s)"),
        "{again}"
    );

    let n = 30;
    let sent = json_in(
        &["produce", &topic, "--type", "scraping_task"],
        Some(&payload_lines(n)),
    );
    assert_eq!(sent["sent"], n);
    let offsets = json(&["offsets", &topic]);
    let hw = latest(&offsets);
    assert_eq!(hw.values().sum::<i64>(), n as i64);
    assert!(offsets["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["earliest"] == 0));
    let table = ok(&["offsets", &topic], None);
    assert!(
        table.contains(&format!("total: {n} message(s) stored")),
        "{table}"
    );

    // A group reads everything but commits only a prefix of partitions 0 and 1 (M records);
    // partition 2 stays uncommitted, so its lag counts from the log start.
    let group = format!("ks-cli-lag-{}", uuid::Uuid::new_v4().simple());
    let transport = ModernTransport::new(&config()).unwrap();
    let mut sub = transport
        .subscribe(SubscribeOptions {
            group: group.clone(),
            topic: topic.clone(),
            client_id: "cli-test".into(),
            start_offset: StartOffset::Earliest,
            min_bytes: 1,
            max_bytes: 1 << 20,
        })
        .unwrap();
    let mut seen: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.values().map(|o| o + 1).sum::<i64>() < n as i64 && Instant::now() < deadline {
        for r in sub.poll(Duration::from_millis(500)).unwrap() {
            seen.insert(r.partition, r.offset);
        }
    }
    let commit: Vec<(i32, i64)> = [(0, (hw[&0] / 2).max(1)), (1, hw[&1])].into();
    sub.commit(&commit).unwrap();
    sub.close().unwrap();
    let m: i64 = commit.iter().map(|(_, o)| o).sum();

    let lag = json(&["lag", &group, &topic]);
    assert_eq!(lag["total_lag"].as_i64(), Some(n as i64 - m), "{lag}");
    let rows = lag["partitions"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        let p = r["partition"].as_i64().unwrap();
        let committed = commit
            .iter()
            .find(|(q, _)| i64::from(*q) == p)
            .map(|(_, o)| *o);
        assert_eq!(r["committed"].as_i64(), committed, "{r}");
        assert_eq!(r["high_watermark"].as_i64(), Some(hw[&p]));
        assert_eq!(r["lag"].as_i64(), Some(hw[&p] - committed.unwrap_or(0)));
    }
    let table = ok(&["lag", &group], None);
    assert!(
        table.contains(&format!("total lag: {}", n as i64 - m)),
        "{table}"
    );
    let groups = json(&["groups"]);
    assert!(
        groups
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == group.as_str()),
        "{groups}"
    );
}

#[test]
fn dead_letters_are_listed_and_replayed_once_each() {
    let topic = common::random_topic("cli-dlq-in");
    let dlq = common::random_topic("cli-dlq");
    ok(&["topic", "create", &topic, "--partitions", "2"], None);
    ok(&["topic", "create", &dlq, "--partitions", "1"], None);
    let mut config = config();
    config.consumer.dead_letter_topic = dlq.clone();
    let kafka = Kafka::connect(config).unwrap();
    let consumer = kafka.consumer().unwrap();
    let fixed = Arc::new(AtomicBool::new(false));
    let handled: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let (f, h) = (fixed.clone(), handled.clone());
    consumer.register_handler(MessageType::new("order"), move |m: &KafkaMessage| {
        if m.payload["bad"] == true && !f.load(Ordering::SeqCst) {
            return Err(HandlerError::permanent("bad order"));
        }
        *h.lock()
            .unwrap()
            .entry(m.correlation_id.clone())
            .or_insert(0) += 1;
        Ok(())
    });
    consumer.consume([topic.as_str()]).unwrap();
    let input: String = (0..10)
        .map(|i| {
            let m = KafkaMessage::from_json(
                MessageType::new("order"),
                serde_json::json!({"n": i, "bad": i % 4 == 1}),
            )
            .with_correlation_id(format!("order-{i}"));
            String::from_utf8(m.to_bytes().unwrap()).unwrap() + "\n"
        })
        .collect();
    // Without --type each line is a whole envelope.
    assert_eq!(json_in(&["produce", &topic], Some(&input))["sent"], 10);
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait("7 handled", &|| handled.lock().unwrap().len() == 7);
    let bad = ["order-1", "order-5", "order-9"];
    let list = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let l = json(&["dlq", "list", "--topic", &dlq]);
            if l["entries"].as_array().unwrap().len() >= 3 || Instant::now() > deadline {
                break l;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let entries = list["entries"].as_array().unwrap();
    let mut ids: Vec<&str> = entries
        .iter()
        .map(|e| e["correlation_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, bad);
    for e in entries {
        assert_eq!(e["kind"], "permanent");
        assert_eq!(e["origin_topic"], topic.as_str());
        assert_eq!(e["message_type"], "order");
        assert!(e["replays"].as_array().unwrap().is_empty());
    }
    let filtered = json(&["dlq", "list", "--topic", &dlq, "--kind", "decode"]);
    assert!(filtered["entries"].as_array().unwrap().is_empty());
    let table = ok(&["dlq", "list", "--topic", &dlq, "--since", "1h"], None);
    assert!(
        table.contains("3 dead letter(s)") && table.contains("order-5"),
        "{table}"
    );

    // A dry run sends nothing; the replay sends each once; a second replay skips them all.
    let dry = json(&["dlq", "replay", "--all", "--topic", &dlq, "--dry-run"]);
    assert_eq!(dry["entries"].as_array().unwrap().len(), 3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(handled.lock().unwrap().len(), 7, "the dry run sent nothing");
    fixed.store(true, Ordering::SeqCst);
    let replayed = json(&["dlq", "replay", "--all", "--topic", &dlq]);
    for e in replayed["entries"].as_array().unwrap() {
        assert!(
            e["result"].as_str().unwrap().starts_with("replayed to"),
            "{e}"
        );
    }
    wait("the replayed three handled", &|| {
        handled.lock().unwrap().len() == 10
    });
    let twice = json(&["dlq", "replay", "--all", "--topic", &dlq]);
    for e in twice["entries"].as_array().unwrap() {
        assert!(
            e["result"]
                .as_str()
                .unwrap()
                .starts_with("skipped: replayed 1 time(s)"),
            "{e}"
        );
    }
    let one = err(
        &[
            "dlq",
            "replay",
            "--topic",
            &dlq,
            entries[0]["id"].as_str().unwrap(),
        ],
        None,
    );
    assert!(one.contains("not replayed"), "{one}");
    std::thread::sleep(Duration::from_secs(1));
    let counts = handled.lock().unwrap().clone();
    assert!(
        counts.values().all(|&c| c == 1),
        "each handled once: {counts:?}"
    );
    let after = json(&["dlq", "list", "--topic", &dlq]);
    assert!(after["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["replays"].as_array().unwrap().len() == 1));
    // The replayed copies carry attempt 0 and their correlation ids.
    let tail = ok(
        &[
            "--json",
            "tail",
            &topic,
            "--from-beginning",
            "--max",
            "13",
            "--idle",
            "10",
        ],
        None,
    );
    let copies: Vec<serde_json::Value> = tail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(copies.len(), 13);
    assert!(copies.iter().all(|c| c["envelope"]["attempt"] == 0));
    consumer.close(Duration::from_secs(10)).unwrap();
    kafka.close(Duration::from_secs(10)).unwrap();
}

#[test]
fn produce_refuses_a_bad_line_by_number_and_sends_nothing() {
    let topic = common::random_topic("cli-produce");
    ok(&["topic", "create", &topic, "--partitions", "2"], None);
    let input = format!(
        "{}{{\"url\": oops}}\n{}",
        payload_lines(2),
        payload_lines(2)
    );
    let e = err(
        &["produce", &topic, "--type", "scraping_task"],
        Some(&input),
    );
    assert!(e.contains("line 3: not JSON"), "{e}");
    let e = err(&["produce", &topic], Some("{\"id\": 1}\n"));
    assert!(
        e.contains("line 1: ") && e.contains("whole envelope"),
        "{e}"
    );
    assert_eq!(
        latest(&json(&["offsets", &topic])).values().sum::<i64>(),
        0,
        "nothing was sent"
    );
    // Undecodable records are shown safely by tail.
    let t = ModernTransport::new(&config()).unwrap();
    let mut s = t.connect_producer().unwrap();
    let r = kafka_sync::transport::OutgoingRecord {
        partition: 0,
        key: None,
        value: vec![0xff, 0x00, b'\n'],
        headers: vec![],
    };
    let opts = kafka_sync::transport::ProduceOptions {
        acks: kafka_sync::Acks::All,
        compression: kafka_sync::Compression::None,
        timeout: Duration::from_secs(5),
    };
    assert!(s.produce(&topic, &[r], &opts)[0].is_ok());
    let line = ok(
        &[
            "tail",
            &topic,
            "--from-beginning",
            "--max",
            "1",
            "--idle",
            "10",
        ],
        None,
    );
    assert!(
        line.contains("undecodable") && line.contains("raw=0xff000a"),
        "{line}"
    );
    let j: serde_json::Value = serde_json::from_str(
        ok(
            &[
                "--json",
                "tail",
                &topic,
                "--from-beginning",
                "--max",
                "1",
                "--idle",
                "10",
            ],
            None,
        )
        .trim(),
    )
    .unwrap();
    assert_eq!(j["raw_value"]["base64"], "/wAK"); // 0xff 0x00 0x0a
}

#[test]
fn errors_name_what_was_wrong_within_their_bound() {
    let missing = common::random_topic("cli-missing");
    let e = err(&["offsets", &missing], None);
    assert!(e.contains("unknown topic") && e.contains(&missing), "{e}");
    let e = err(&["tail", &missing, "--max", "1"], None);
    assert!(e.contains("unknown topic"), "{e}");
    let e = err(&["produce", &missing, "--type", "t"], Some("{}\n"));
    assert!(e.contains("unknown topic"), "{e}");
    let group = format!("ks-cli-nobody-{}", uuid::Uuid::new_v4().simple());
    let e = err(&["lag", &group], None);
    assert!(
        e.contains("unknown consumer group") && e.contains(&group),
        "{e}"
    );
    let e = err(&["dlq", "replay", "--topic", &missing, "0:0"], None);
    assert!(e.contains("unknown topic"), "{e}");

    // Nothing listens on 127.0.0.1:9899 (this suite's port range).
    let started = Instant::now();
    let out = cli_at("127.0.0.1:9899", &["--timeout", "2", "topics"], None);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("127.0.0.1:9899") && e.contains("connection error"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let out = cli(&["offsets"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing argument is a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("<TOPIC>"));
    let out = cli(&["dlq", "list", "--since", "yesterday"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
    for sub in [
        &["topics"][..],
        &["topic", "create"],
        &["offsets"],
        &["groups"],
        &["lag"],
        &["tail"],
        &["produce"],
        &["dlq", "list"],
        &["dlq", "replay"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let help = ok(&args, None);
        assert!(help.contains("Usage: kafka-sync"), "{sub:?}: {help}");
    }
}

#[test]
fn topics_lists_leaders_replicas_and_isr() {
    let topic = common::random_topic("cli-topics");
    ok(
        &[
            "topic",
            "create",
            &topic,
            "--partitions",
            "2",
            "--replication",
            "1",
        ],
        None,
    );
    let all = json(&["topics", &topic]);
    let t = &all["topics"][0];
    assert_eq!(t["name"], topic.as_str());
    let leader = all["brokers"][0]["id"].clone();
    for p in t["partitions"].as_array().unwrap() {
        assert_eq!(p["leader"], leader);
        assert_eq!(p["replicas"], serde_json::json!([leader]));
        assert_eq!(p["isr"], serde_json::json!([leader]));
    }
    let table = ok(&["topics"], None);
    assert!(
        table.contains("LEADER") && table.contains(&topic),
        "{table}"
    );
    assert!(!table.contains("__consumer_offsets"));
}

#[test]
fn undecodable_dead_letters_are_replayed_byte_for_byte() {
    let topic = common::random_topic("cli-raw");
    let dlq = common::random_topic("cli-raw-dlq");
    ok(&["topic", "create", &topic, "--partitions", "2"], None);
    let mut config = config();
    config.consumer.dead_letter_topic = dlq.clone();
    let t = ModernTransport::new(&config).unwrap();
    let mut s = t.connect_producer().unwrap();
    let bytes = vec![0xff, 0x01, b'{'];
    let record = kafka_sync::transport::OutgoingRecord {
        partition: 1,
        key: Some(b"k-1".to_vec()),
        value: bytes.clone(),
        headers: vec![],
    };
    let opts = kafka_sync::transport::ProduceOptions {
        acks: kafka_sync::Acks::All,
        compression: kafka_sync::Compression::None,
        timeout: Duration::from_secs(5),
    };
    assert!(s.produce(&topic, &[record], &opts)[0].is_ok());
    let kafka = Kafka::connect(config).unwrap();
    let consumer = kafka.consumer().unwrap();
    consumer.consume([topic.as_str()]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer
        .metrics()
        .iter()
        .map(|m| m.dead_lettered)
        .sum::<u64>()
        < 1
    {
        assert!(Instant::now() < deadline, "not dead-lettered");
        std::thread::sleep(Duration::from_millis(50));
    }
    consumer.close(Duration::from_secs(10)).unwrap();
    let list = json(&["dlq", "list", "--topic", &dlq, "--kind", "decode"]);
    let entry = &list["entries"][0];
    assert_eq!(entry["origin_partition"], 1);
    let replayed = json(&[
        "dlq",
        "replay",
        "--topic",
        &dlq,
        entry["id"].as_str().unwrap(),
    ]);
    assert!(
        replayed["entries"][0]["result"]
            .as_str()
            .unwrap()
            .starts_with("replayed to"),
        "{replayed}"
    );
    let tail = ok(
        &[
            "--json",
            "tail",
            &topic,
            "--from-beginning",
            "--partition",
            "1",
            "--max",
            "2",
            "--idle",
            "10",
        ],
        None,
    );
    let records: Vec<serde_json::Value> = tail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{tail}");
    for r in &records {
        assert_eq!(r["raw_value"]["base64"], "/wF7", "{r}"); // 0xff 0x01 {
        assert_eq!(r["key"]["utf8"], "k-1", "{r}");
    }
    kafka.close(Duration::from_secs(10)).unwrap();
}
