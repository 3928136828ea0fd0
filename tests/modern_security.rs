//! TLS and SASL on the modern transport against the secure Apache Kafka 3.9.1 broker that
//! `tests/broker/kafka.sh` starts with `KAFKA_SECURE=1` (`tests/broker/with-broker.sh` starts
//! it as `3.9.1:9300:secure`): PLAINTEXT 9300, SASL_PLAINTEXT 9302, SSL 9303, SASL_SSL 9304,
//! user `alice` / `alice-secret` for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, the test CA in
//! `target/kafka/3.9.1-9300/tls/ca.pem`. Right credentials connect, produce and read back;
//! wrong ones fail at once with `ErrorKind::Authentication` naming the mechanism (or TLS) and
//! the broker. Built only with `--features tls,sasl`.

mod modern_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kafka_sync::security::{Sasl, SaslMechanism, SecurityProtocol, TlsConfig};
use kafka_sync::transport::{ModernTransport, OutgoingRecord, ProduceOptions, Transport};
use kafka_sync::{Acks, Compression, Config, Error, ErrorKind, StartOffset, TransportKind};
use modern_support::{random_name, read, subscribe};

const HOW: &str = "`KAFKA_SECURE=1 KAFKA_PORT=9300 bash tests/broker/kafka.sh up` \
                   (or `make test`, which starts it)";
const USER: &str = "alice";
const PASSWORD: &str = "alice-secret";

/// The secure broker's host and first port (`KAFKA_SECURE_TEST_BROKER`, default
/// 127.0.0.1:9300); its listeners are on the next ports.
fn base() -> (String, u16) {
    let addr =
        std::env::var("KAFKA_SECURE_TEST_BROKER").unwrap_or_else(|_| "127.0.0.1:9300".into());
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    (host.to_string(), port.parse().expect("a port number"))
}

/// The address of the listener for `protocol`; panics with how to start the broker when it
/// does not answer (these tests never pass or skip without their broker).
fn listener(protocol: SecurityProtocol) -> String {
    let (host, port) = base();
    let port = port
        + match protocol {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::Ssl => 3,
            SecurityProtocol::SaslSsl => 4,
        };
    let addr = format!("{host}:{port}");
    modern_support::reach::require(vec![addr], &format!("{HOW} ({protocol})")).remove(0)
}

/// The test CA (`KAFKA_SECURE_TEST_CA`, default the harness's).
fn ca() -> PathBuf {
    let path = std::env::var("KAFKA_SECURE_TEST_CA").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/kafka/3.9.1-9300/tls/ca.pem"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "no test CA at {}: run {HOW}",
        path.display()
    );
    path
}

fn config(protocol: SecurityProtocol, tls: Option<TlsConfig>, sasl: Option<Sasl>) -> Config {
    let mut c = Config {
        brokers: vec![listener(protocol)],
        transport: TransportKind::Modern,
        client_id: "ks-security-tests".into(),
        ..Config::default()
    };
    c.connect_timeout = Duration::from_secs(3);
    c.request_timeout = Duration::from_secs(10);
    c.security.protocol = protocol;
    c.security.tls = tls;
    c.security.sasl = sasl;
    c
}

fn transport(config: &Config) -> ModernTransport {
    ModernTransport::new(config).expect("transport")
}

/// Creates a topic, produces 5 records, reads them back through a consumer group: every
/// kind of connection (admin, producer, group coordinator, heartbeat, fetch) authenticates.
fn round_trip(config: &Config) {
    let started = Instant::now();
    let t = transport(config);
    let topic = random_name("security");
    assert_eq!(t.ensure_topic(&topic, 2, 1).expect("ensure_topic"), 2);
    let records: Vec<OutgoingRecord> = (0..5)
        .map(|i| OutgoingRecord {
            partition: i % 2,
            key: Some(format!("k{i}").into_bytes()),
            value: format!("over {} #{i}", config.security.protocol).into_bytes(),
            headers: Vec::new(),
        })
        .collect();
    let options = ProduceOptions {
        acks: Acks::All,
        compression: Compression::None,
        timeout: Duration::from_secs(10),
    };
    let mut producer = t.connect_producer().expect("producer");
    for r in producer.produce(&topic, &records, &options) {
        r.expect("record written");
    }
    let mut sub = subscribe(&t, &topic, &random_name("group"), StartOffset::Earliest);
    let got = read(sub.as_mut(), 5, Duration::from_secs(20));
    let mut values: Vec<Vec<u8>> = got.into_iter().map(|r| r.value).collect();
    values.sort();
    let mut want: Vec<Vec<u8>> = records.into_iter().map(|r| r.value).collect();
    want.sort();
    assert_eq!(values, want);
    sub.close().expect("close");
    eprintln!(
        "{} round trip in {:?}",
        config.security.protocol,
        started.elapsed()
    );
}

/// The error a transport with `config` meets on its first request; it must come at once.
fn first_error(config: &Config) -> Error {
    let started = Instant::now();
    let e = transport(config)
        .partition_count("any-topic")
        .expect_err("the broker must refuse");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}: {e}",
        started.elapsed()
    );
    e
}

fn assert_refused(e: &Error, kind: ErrorKind, words: &[&str], broker: &str) {
    let text = e.to_string();
    eprintln!("refused as expected: {text}");
    assert_eq!(e.kind(), kind, "{text}");
    assert!(
        !e.is_retriable() || kind != ErrorKind::Authentication,
        "{text}"
    );
    for w in words {
        assert!(text.contains(w), "{text:?} should say {w:?}");
    }
    assert_eq!(e.context().broker.as_deref(), Some(broker), "{text}");
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");
}

fn sasl(mechanism: SaslMechanism, password: &str) -> Option<Sasl> {
    Some(Sasl::new(mechanism, USER, password))
}

#[test]
fn sasl_plain_with_the_right_password_produces_and_reads_back() {
    let p = SecurityProtocol::SaslPlaintext;
    round_trip(&config(p, None, sasl(SaslMechanism::Plain, PASSWORD)));
}

#[test]
fn scram_sha_256_with_the_right_password_produces_and_reads_back() {
    let p = SecurityProtocol::SaslPlaintext;
    round_trip(&config(p, None, sasl(SaslMechanism::ScramSha256, PASSWORD)));
}

#[test]
fn scram_sha_512_with_the_right_password_produces_and_reads_back() {
    let p = SecurityProtocol::SaslPlaintext;
    round_trip(&config(p, None, sasl(SaslMechanism::ScramSha512, PASSWORD)));
}

#[test]
fn a_wrong_password_fails_clearly_for_every_mechanism() {
    let p = SecurityProtocol::SaslPlaintext;
    let broker = listener(p);
    for m in [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ] {
        let e = first_error(&config(p, None, sasl(m, "not-the-password")));
        let words = [m.name(), "\"alice\"", "SaslAuthenticationFailed"];
        assert_refused(&e, ErrorKind::Authentication, &words, &broker);
    }
    // An unknown user is refused the same way.
    let e = first_error(&config(
        p,
        None,
        Some(Sasl::new(SaslMechanism::ScramSha256, "mallory", PASSWORD)),
    ));
    assert_refused(&e, ErrorKind::Authentication, &["\"mallory\""], &broker);
}

#[test]
fn tls_with_the_test_ca_produces_and_reads_back() {
    round_trip(&config(
        SecurityProtocol::Ssl,
        Some(TlsConfig::with_ca(ca())),
        None,
    ));
}

#[test]
fn tls_without_the_ca_or_with_a_wrong_server_name_fails_clearly() {
    let p = SecurityProtocol::Ssl;
    let broker = listener(p);
    // No CA bundle: Mozilla's roots do not know the test CA.
    let e = first_error(&config(p, None, None));
    let words = ["TLS handshake failed", "UnknownIssuer", "Mozilla"];
    assert_refused(&e, ErrorKind::Authentication, &words, &broker);
    // The right CA, but a name the certificate is not for.
    let tls = TlsConfig {
        ca_pem_path: Some(ca()),
        server_name: Some("kafka.example.com".into()),
    };
    let e = first_error(&config(p, Some(tls), None));
    let words = [
        "TLS handshake failed",
        "kafka.example.com",
        "NotValidForName",
    ];
    assert_refused(&e, ErrorKind::Authentication, &words, &broker);
}

#[test]
fn sasl_ssl_with_scram_produces_and_reads_back_and_refuses_a_wrong_password() {
    let p = SecurityProtocol::SaslSsl;
    let tls = || Some(TlsConfig::with_ca(ca()));
    round_trip(&config(
        p,
        tls(),
        sasl(SaslMechanism::ScramSha512, PASSWORD),
    ));
    round_trip(&config(p, tls(), sasl(SaslMechanism::Plain, PASSWORD)));
    let e = first_error(&config(p, tls(), sasl(SaslMechanism::ScramSha256, "wrong")));
    let words = ["SCRAM-SHA-256", "SaslAuthenticationFailed"];
    assert_refused(&e, ErrorKind::Authentication, &words, &listener(p));
}

#[test]
fn a_protocol_the_listener_does_not_speak_fails_with_a_hint() {
    // Plain TCP to the SSL listener: the broker hangs up on ApiVersions.
    let ssl = listener(SecurityProtocol::Ssl);
    let mut c = config(SecurityProtocol::Plaintext, None, None);
    c.brokers = vec![ssl.clone()];
    let e = first_error(&c);
    assert_refused(
        &e,
        ErrorKind::Connection,
        &["security.protocol is PLAINTEXT"],
        &ssl,
    );
    // TLS to the PLAINTEXT listener.
    let plain = listener(SecurityProtocol::Plaintext);
    let mut c = config(SecurityProtocol::Ssl, Some(TlsConfig::with_ca(ca())), None);
    c.brokers = vec![plain.clone()];
    let e = first_error(&c);
    assert_refused(
        &e,
        ErrorKind::Connection,
        &["TLS handshake failed", "SSL listener"],
        &plain,
    );
}
