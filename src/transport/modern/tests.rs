//! Unit tests of [`ModernTransport`](super::ModernTransport) that need no broker: settings,
//! group timeouts, health checks.

use super::*;

#[test]
fn new_stores_settings_without_connecting_and_rejects_no_brokers() {
    let config = Config {
        brokers: vec!["127.0.0.1:1".into()],
        ..Config::default()
    };
    let t = ModernTransport::new(&config).unwrap();
    assert_eq!(t.name(), "modern");
    assert_eq!(t.settings.session_timeout, Duration::from_secs(10));
    assert!(format!("{t:?}").contains("127.0.0.1:1"));
    let e = ModernTransport::new(&Config {
        brokers: vec![" ".into()],
        ..Config::default()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[test]
fn group_settings_come_from_the_config() {
    let mut config = Config::default();
    config.consumer.session_timeout = Duration::from_secs(6);
    config.consumer.heartbeat_interval = Duration::from_secs(2);
    config.consumer.assignor = Assignor::RoundRobin;
    config.producer.idempotence = true;
    let t = ModernTransport::new(&config).unwrap();
    assert_eq!(t.settings.session_timeout, Duration::from_secs(6));
    assert_eq!(t.settings.heartbeat_interval, Duration::from_secs(2));
    assert_eq!(t.settings.assignor, Assignor::RoundRobin);
    assert!(t.settings.idempotent);
    config.consumer.heartbeat_interval = Duration::from_secs(3);
    let e = ModernTransport::new(&config).unwrap_err();
    assert!(e.to_string().contains("heartbeat_interval"), "{e}");
}

#[test]
fn an_unreachable_broker_fails_the_health_check_fast_naming_it() {
    let t = ModernTransport::new(&Config {
        brokers: vec!["127.0.0.1:1".into()],
        ..Config::default()
    })
    .unwrap();
    let started = Instant::now();
    let e = t.health_check(Duration::from_secs(2)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
}

#[test]
fn the_health_check_tries_brokers_learned_from_metadata_too() {
    let t = ModernTransport::new(&Config {
        brokers: vec!["127.0.0.1:1".into()],
        ..Config::default()
    })
    .unwrap();
    t.lock_admin().learn_node(2, "127.0.0.1:2");
    let e = t.health_check(Duration::from_secs(2)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("127.0.0.1:1") && text.contains("127.0.0.1:2"),
        "{text}"
    );
}
