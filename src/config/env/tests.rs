use super::*;
use std::collections::HashMap;

fn from(vars: &[(&str, &str)]) -> Result<Config> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn no_variables_gives_the_defaults_a_real_broker_on_the_modern_transport() {
    let c = from(&[]).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.transport, TransportKind::Modern);
    assert_eq!(c.brokers, vec!["localhost:9092"]);
}

#[test]
fn every_variable_reaches_its_field() {
    for var in VARIABLES {
        let mut vars = vec![(var.name, var.sample)];
        // Settings that only make sense together with another one.
        match var.name {
            "KAFKA_TRANSPORT" => {}
            "KAFKA_FETCH_MAX_BYTES" => vars.push(("KAFKA_FETCH_MIN_BYTES", "1")),
            "KAFKA_HEARTBEAT_INTERVAL_MS" => vars.push(("KAFKA_SESSION_TIMEOUT_MS", "30000")),
            "KAFKA_ACKS" => vars.push(("KAFKA_ENABLE_IDEMPOTENCE", "false")),
            _ => {}
        }
        let mut expected = Config::default();
        for (name, value) in &vars[1..] {
            let other = VARIABLES.iter().find(|v| v.name == *name).unwrap();
            (other.apply)(&mut expected, value).unwrap();
        }
        let got = from(&vars).unwrap_or_else(|e| panic!("{} = {}: {e}", var.name, var.sample));
        assert_ne!(
            got, expected,
            "{} = {} changed nothing (field {})",
            var.name, var.sample, var.field
        );
    }
}

#[test]
fn some_variables_set_exactly_their_field() {
    let c = from(&[
        ("KAFKA_BROKERS", "a:1, b:2"),
        ("KAFKA_GROUP_ID", "g"),
        ("KAFKA_HANDLER_TIMEOUT_MS", "none"),
        ("KAFKA_SESSION_TIMEOUT_MS", "45000"),
        ("KAFKA_HEARTBEAT_INTERVAL_MS", "3000"),
        ("KAFKA_ASSIGNOR", "roundrobin"),
        ("KAFKA_ENABLE_IDEMPOTENCE", "true"),
    ])
    .unwrap();
    assert_eq!(c.brokers, vec!["a:1", "b:2"]);
    assert_eq!(c.transport, TransportKind::Modern);
    assert_eq!(c.group_id, "g");
    assert_eq!(c.consumer.handler_timeout, None);
    assert_eq!(c.consumer.session_timeout, Duration::from_secs(45));
    assert_eq!(c.consumer.heartbeat_interval, Duration::from_secs(3));
    assert_eq!(c.consumer.assignor, Assignor::RoundRobin);
    assert!(c.producer.idempotence);
}

#[test]
fn the_memory_transport_is_chosen_only_by_name_and_never_with_brokers() {
    let c = from(&[("KAFKA_TRANSPORT", "memory")]).unwrap();
    assert_eq!(c.transport, TransportKind::Memory);
    let e = from(&[("KAFKA_TRANSPORT", "memory"), ("KAFKA_BROKERS", "a:1")]).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("KAFKA_TRANSPORT") && text.contains("KAFKA_BROKERS"),
        "{text}"
    );
    let e = from(&[("KAFKA_TRANSPORT", "modren")]).unwrap_err();
    assert!(e.to_string().contains("modern"), "{e}");
}

#[test]
fn lz4_and_zstd_are_read_and_need_their_feature() {
    for (name, c) in [("lz4", Compression::Lz4), ("zstd", Compression::Zstd)] {
        match from(&[("KAFKA_COMPRESSION", name)]) {
            Ok(config) => assert_eq!(config.producer.compression, c),
            Err(e) => {
                assert!(!c.is_available());
                assert!(
                    e.to_string().contains(&format!("`{name}` cargo feature")),
                    "{e}"
                );
            }
        }
    }
}

#[test]
fn unparsable_variables_are_named() {
    let e = from(&[("KAFKA_BATCH_SIZE", "lots")]).unwrap_err();
    assert!(e.to_string().contains("KAFKA_BATCH_SIZE"), "{e}");
    let e = from(&[("KAFKA_COMPRESSION", "lz5")]).unwrap_err();
    assert!(e.to_string().contains("lz5"), "{e}");
    let e = from(&[("KAFKA_BROKERS", "nohost")]).unwrap_err();
    assert!(e.to_string().contains("brokers"), "{e}");
    let e = from(&[("KAFKA_ENABLE_IDEMPOTENCE", "maybe")]).unwrap_err();
    assert!(e.to_string().contains("KAFKA_ENABLE_IDEMPOTENCE"), "{e}");
}

#[test]
fn typos_of_known_variables_are_warned_about_with_the_nearest_name() {
    let warnings = unknown_variable_warnings(
        [
            "KAFKA_BROKER",
            "KAFKA_GROUPID",
            "KAFKA_BROKERS",
            "KAFKA_TEST_VERSION",
            "PATH",
        ]
        .into_iter(),
    );
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("KAFKA_BROKER ") && warnings[0].contains("KAFKA_BROKERS?"));
    assert!(warnings[1].contains("KAFKA_GROUP_ID"), "{warnings:?}");
}

#[test]
fn variable_names_are_unique() {
    let mut names: Vec<_> = VARIABLES.iter().map(|v| v.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), VARIABLES.len());
}

#[test]
fn the_readme_configuration_table_names_every_variable_and_field() {
    let readme = include_str!("../../../README.md");
    for var in VARIABLES {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}`", var.name)))
            .unwrap_or_else(|| panic!("README has no table row for {}", var.name));
        assert!(
            row.contains(&format!("`{}`", var.field)),
            "README row for {} does not name field {}: {row}",
            var.name,
            var.field
        );
    }
}
