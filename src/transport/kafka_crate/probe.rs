//! The bounds the `kafka` crate lacks: a TCP connect with a timeout, and one ApiVersions v0
//! exchange that tells whether the broker still accepts the protocol versions the crate
//! sends (Kafka 4.0 removed most v0 requests, KIP-896).
//!
//! The crate opens its connections with `TcpStream::connect` (no timeout: an unreachable
//! host costs the kernel's SYN retry time, about two minutes on Linux). Every client this
//! transport builds first probes its bootstrap brokers here, with `connect_timeout`, and the
//! crate is then pointed at the broker that answered.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use super::errors::TOO_NEW;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::net::connect_within;

/// The requests the crate sends, as `(api key, name, version)`.
const REQUIRED: [(i16, &str, i16); 7] = [
    (0, "Produce", 0),
    (1, "Fetch", 0),
    (2, "ListOffsets", 0),
    (3, "Metadata", 0),
    (8, "OffsetCommit", 1),
    (9, "OffsetFetch", 1),
    (10, "FindCoordinator", 0),
];

const API_VERSIONS_KEY: i16 = 18;

/// One `(api key, min version, max version)` entry of an ApiVersions answer.
pub(super) type ApiRange = (i16, i16, i16);

/// The ApiVersions v0 request bytes (size prefix included).
pub(super) fn encode_api_versions(correlation_id: i32, client_id: &str) -> Vec<u8> {
    let id = &client_id.as_bytes()[..client_id.len().min(i16::MAX as usize)];
    let mut body = Vec::with_capacity(10 + id.len());
    body.extend_from_slice(&API_VERSIONS_KEY.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(id.len() as i16).to_be_bytes());
    body.extend_from_slice(id);
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Parses an ApiVersions v0 answer (without its size prefix): the error code and the ranges.
pub(super) fn decode_api_versions(
    frame: &[u8],
    correlation_id: i32,
) -> std::result::Result<(i16, Vec<ApiRange>), String> {
    let mut r = frame;
    let mut take = |n: usize| -> std::result::Result<&[u8], String> {
        if r.len() < n {
            return Err("truncated ApiVersions answer".to_string());
        }
        let (head, rest) = r.split_at(n);
        r = rest;
        Ok(head)
    };
    let i16_at = |b: &[u8]| i16::from_be_bytes([b[0], b[1]]);
    let got = i32::from_be_bytes(take(4)?.try_into().map_err(|_| "bad frame")?);
    if got != correlation_id {
        return Err(format!(
            "ApiVersions answer has correlation id {got}, expected {correlation_id}"
        ));
    }
    let code = i16_at(take(2)?);
    let n = i32::from_be_bytes(take(4)?.try_into().map_err(|_| "bad frame")?);
    let mut ranges = Vec::with_capacity(n.clamp(0, 1024) as usize);
    for _ in 0..n.max(0) {
        let e = take(6)?;
        ranges.push((i16_at(&e[0..2]), i16_at(&e[2..4]), i16_at(&e[4..6])));
    }
    Ok((code, ranges))
}

/// The requests the crate needs that `ranges` does not accept, as `"Name vN"`.
pub(super) fn unsupported_requests(ranges: &[ApiRange]) -> Vec<String> {
    REQUIRED
        .iter()
        .filter(|(key, _, version)| {
            !ranges
                .iter()
                .any(|(k, min, max)| k == key && min <= version && version <= max)
        })
        .map(|(_, name, version)| format!("{name} v{version}"))
        .collect()
}

/// Connects to `broker` within `connect_timeout` and asks for its API versions, waiting at
/// most `read_timeout` for the answer. `Ok` when the broker answered and accepts every
/// request version the `kafka` crate sends; `UnsupportedBroker` when it does not;
/// `Connection` or `Timeout` otherwise. The error names the broker.
pub(super) fn check_broker(
    broker: &str,
    client_id: &str,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<()> {
    let mut stream = connect_within(broker, connect_timeout)?;
    let started = Instant::now();
    let io_err = |e: io::Error| {
        let kind = if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            ErrorKind::Timeout
        } else {
            ErrorKind::Connection
        };
        let why = if kind == ErrorKind::Timeout {
            format!("connected, but no ApiVersions answer within {read_timeout:?}")
        } else {
            "connected, but the ApiVersions exchange failed".to_string()
        };
        Error::new(kind, why).with_source(e).with_broker(broker)
    };
    let bound = Some(read_timeout.max(Duration::from_millis(1)));
    stream.set_read_timeout(bound).map_err(io_err)?;
    stream.set_write_timeout(bound).map_err(io_err)?;
    let _ = stream.set_nodelay(true);
    let correlation_id = 0x6b73; // "ks"
    stream
        .write_all(&encode_api_versions(correlation_id, client_id))
        .map_err(io_err)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).map_err(io_err)?;
    let size = i32::from_be_bytes(size);
    if !(0..=1_000_000).contains(&size) {
        return Err(Error::new(
            ErrorKind::Broker,
            format!("ApiVersions answer announces {size} bytes: is this a Kafka broker?"),
        )
        .with_broker(broker));
    }
    let mut frame = vec![0u8; size as usize];
    stream.read_exact(&mut frame).map_err(io_err)?;
    let (code, ranges) = decode_api_versions(&frame, correlation_id)
        .map_err(|why| Error::new(ErrorKind::Broker, why).with_broker(broker))?;
    log::debug!(
        "kafka-crate: broker {broker} answered ApiVersions in {:?} ({} APIs, code {code})",
        started.elapsed(),
        ranges.len()
    );
    if code == 35 {
        return Err(Error::new(ErrorKind::UnsupportedBroker, TOO_NEW).with_broker(broker));
    }
    if code != 0 {
        return Err(Error::new(
            ErrorKind::Broker,
            format!("ApiVersions answered error code {code}"),
        )
        .with_broker(broker));
    }
    let missing = unsupported_requests(&ranges);
    if !missing.is_empty() {
        return Err(Error::new(
            ErrorKind::UnsupportedBroker,
            format!("broker rejects {}; {TOO_NEW}", missing.join(", ")),
        )
        .with_broker(broker));
    }
    Ok(())
}

/// Checks `brokers` in order and returns the index of the first that answered. When none
/// did, the error (`Connection`, or `UnsupportedBroker` if a broker answered but is too new)
/// names every broker and why it failed.
pub(super) fn first_reachable(
    brokers: &[String],
    client_id: &str,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<usize> {
    let mut failures = Vec::new();
    for (i, broker) in brokers.iter().enumerate() {
        match check_broker(broker, client_id, connect_timeout, read_timeout) {
            Ok(()) => return Ok(i),
            // A broker that answered but is too new: the others are the same cluster.
            Err(e) if e.kind() == ErrorKind::UnsupportedBroker => return Err(e),
            Err(e) => failures.push(e),
        }
    }
    let kind = if failures.iter().all(|e| e.kind() == ErrorKind::Timeout) && !failures.is_empty() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Connection
    };
    let detail: Vec<String> = failures
        .iter()
        .map(|e| {
            let broker = e.context().broker.as_deref().unwrap_or("?");
            format!("{broker}: {}", e.detached().message())
        })
        .collect();
    Err(Error::new(
        kind,
        format!("no Kafka broker reachable ({})", detail.join("; ")),
    )
    .with_broker(brokers.join(",")))
}

/// An ApiVersions v0 answer frame (without size prefix), for tests and fake brokers.
#[cfg(test)]
pub(super) fn api_versions_answer(correlation_id: i32, code: i16, ranges: &[ApiRange]) -> Vec<u8> {
    let mut f = correlation_id.to_be_bytes().to_vec();
    f.extend_from_slice(&code.to_be_bytes());
    f.extend_from_slice(&(ranges.len() as i32).to_be_bytes());
    for (k, min, max) in ranges {
        for v in [k, min, max] {
            f.extend_from_slice(&v.to_be_bytes());
        }
    }
    f
}

/// What Kafka 3.9 accepts for the requests the crate sends.
#[cfg(test)]
pub(super) const KAFKA_3_9: [ApiRange; 8] = [
    (0, 0, 11),
    (1, 0, 17),
    (2, 0, 9),
    (3, 0, 12),
    (8, 0, 9),
    (9, 0, 9),
    (10, 0, 6),
    (18, 0, 4),
];
/// Kafka 4.0 after KIP-896 (the versions the crate needs are gone).
#[cfg(test)]
pub(super) const KAFKA_4_0: [ApiRange; 8] = [
    (0, 3, 12),
    (1, 4, 17),
    (2, 1, 10),
    (3, 0, 13),
    (8, 2, 9),
    (9, 1, 9),
    (10, 0, 6),
    (18, 0, 4),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_request_is_encoded_as_v0() {
        let bytes = encode_api_versions(7, "ab");
        assert_eq!(
            bytes,
            vec![0, 0, 0, 12, 0, 18, 0, 0, 0, 0, 0, 7, 0, 2, b'a', b'b']
        );
    }

    #[test]
    fn api_versions_answer_is_decoded_and_checked() {
        let (code, ranges) =
            decode_api_versions(&api_versions_answer(5, 0, &KAFKA_3_9), 5).unwrap();
        assert_eq!(code, 0);
        assert_eq!(ranges.len(), 8);
        assert!(unsupported_requests(&ranges).is_empty());

        let (_, ranges) = decode_api_versions(&api_versions_answer(5, 0, &KAFKA_4_0), 5).unwrap();
        assert_eq!(
            unsupported_requests(&ranges),
            vec![
                "Produce v0",
                "Fetch v0",
                "ListOffsets v0",
                "OffsetCommit v1"
            ]
        );
    }

    #[test]
    fn bad_answers_are_rejected() {
        assert!(decode_api_versions(&api_versions_answer(5, 0, &KAFKA_3_9), 6).is_err());
        let mut truncated = api_versions_answer(5, 0, &KAFKA_3_9);
        truncated.truncate(20);
        assert!(decode_api_versions(&truncated, 5).is_err());
    }

    #[test]
    fn a_closed_port_fails_fast_with_the_broker_named() {
        let started = Instant::now();
        let e = first_reachable(
            &["127.0.0.1:1".to_string()],
            "t",
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
    }

    #[test]
    fn an_unresolvable_host_is_a_connection_error() {
        let e = connect_within("no-such-host.invalid:9092", Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert_eq!(
            e.context().broker.as_deref(),
            Some("no-such-host.invalid:9092")
        );
    }
}
