//! The `kafka` crate transport against fake brokers on loopback (a Kafka 4 that refuses
//! protocol v0, a broker that never answers): no real broker needed.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use super::probe::{api_versions_answer, ApiRange, KAFKA_4_0};
use super::KafkaCrateTransport;
use crate::config::Config;
use crate::error::ErrorKind;
use crate::transport::Transport;

fn config(brokers: &str) -> Config {
    Config {
        brokers: vec![brokers.to_string()],
        connect_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(15),
        ..Config::default()
    }
}

/// A fake broker on a free port: answers ApiVersions with `ranges`, or never answers when
/// `ranges` is `None`. Serves `connections` connections, then stops.
fn fake_broker(ranges: Option<&'static [ApiRange]>, connections: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::Builder::new()
        .name("fake-broker".into())
        .spawn(move || {
            for stream in listener.incoming().take(connections) {
                let Ok(mut s) = stream else { return };
                let mut size = [0u8; 4];
                if s.read_exact(&mut size).is_err() {
                    continue;
                }
                let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
                if s.read_exact(&mut frame).is_err() {
                    continue;
                }
                match ranges {
                    Some(ranges) => {
                        let correlation = i32::from_be_bytes(frame[4..8].try_into().unwrap());
                        let answer = api_versions_answer(correlation, 0, ranges);
                        let _ = s.write_all(&(answer.len() as i32).to_be_bytes());
                        let _ = s.write_all(&answer);
                    }
                    None => thread::sleep(Duration::from_secs(3)),
                }
            }
        })
        .unwrap();
    addr
}

#[test]
fn a_kafka_4_broker_is_reported_as_unsupported() {
    let addr = fake_broker(Some(&KAFKA_4_0), 2);
    let t = KafkaCrateTransport::new(&config(&addr)).unwrap();
    let e = t.health_check(Duration::from_secs(2)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnsupportedBroker);
    assert!(e.to_string().contains("KIP-896"), "{e}");
    assert!(e.to_string().contains("Produce v0"), "{e}");
    assert!(!e.is_retriable());
    let e = t.partition_count("t").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnsupportedBroker);
}

#[test]
fn a_silent_broker_fails_the_health_check_within_its_timeout() {
    let addr = fake_broker(None, 1);
    let t = KafkaCrateTransport::new(&config(&addr)).unwrap();
    let started = Instant::now();
    let e = t.health_check(Duration::from_millis(300)).unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(e.to_string().contains(&addr), "{e}");
}
