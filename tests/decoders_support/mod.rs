//! Helpers of `decoders_never_panic`: a test run again in a child process (an abort there
//! fails the test instead of ending the runner), and a fake broker on a local port that
//! answers ApiVersions, Metadata and Fetch (flexible v12) with bytes the test chooses.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use kafka_sync::transport::{ConsumedRecord, ModernTransport};
use kafka_sync::{Config, TransportKind};

/// Set in the child process [`in_child`] starts.
pub const CHILD: &str = "KAFKA_SYNC_DECODERS_CHILD";

/// Runs the test `name` again in a child process, where `body` runs: an abort there fails
/// this test with the child's output instead of ending the runner.
pub fn in_child(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        body();
        return;
    }
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .expect("the child test runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 passed"),
        "the child running {name} ended with {} (an abort is signal 6):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- a fake broker -------------------------------------------------------------------

/// API keys the fake broker answers.
pub const FETCH: i16 = 1;
pub const METADATA: i16 = 3;
pub const API_VERSIONS: i16 = 18;

/// What the fake broker answers to (api key, version): the body after the header.
pub type Answers = Arc<Mutex<Box<dyn FnMut(i16, i16) -> Vec<u8> + Send>>>;

/// A broker on a local port answering every connection's requests with `answers`; its
/// address. Advertises itself as node 1 in the metadata answers built here.
pub fn fake_broker(answers: Answers) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let answers = answers.clone();
            thread::spawn(move || serve(stream, answers));
        }
    });
    addr
}

pub fn serve(mut s: TcpStream, answers: Answers) {
    loop {
        let mut size = [0u8; 4];
        if s.read_exact(&mut size).is_err() {
            return;
        }
        let mut request = vec![0u8; i32::from_be_bytes(size) as usize];
        if s.read_exact(&mut request).is_err() {
            return;
        }
        let key = i16::from_be_bytes([request[0], request[1]]);
        let version = i16::from_be_bytes([request[2], request[3]]);
        let id = &request[4..8];
        let mut frame = id.to_vec();
        // Response header v1 (tagged fields) for flexible versions, except ApiVersions.
        let flexible = match key {
            METADATA => version >= 9,
            FETCH => version >= 12,
            _ => false,
        };
        if flexible {
            frame.push(0);
        }
        frame.extend(answers.lock().unwrap()(key, version));
        let mut out = (frame.len() as i32).to_be_bytes().to_vec();
        out.extend(frame);
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

pub fn uvarint(out: &mut Vec<u8>, mut n: u32) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub fn compact_str(out: &mut Vec<u8>, s: &str) {
    uvarint(out, s.len() as u32 + 1);
    out.extend_from_slice(s.as_bytes());
}

/// ApiVersions v3: Fetch and Metadata at v12 only, so the client speaks flexible v12.
pub fn api_versions() -> Vec<u8> {
    let mut b = vec![0, 0]; // error_code
    let ranges: [(i16, i16, i16); 3] = [(FETCH, 12, 12), (2, 1, 1), (METADATA, 12, 12)];
    uvarint(&mut b, ranges.len() as u32 + 1);
    for (k, min, max) in ranges {
        for v in [k, min, max] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.push(0); // tagged fields
    }
    b.extend_from_slice(&0i32.to_be_bytes()); // throttle_time_ms
    b.push(0);
    b
}

/// Metadata v12: this broker (node 1 at `addr`) leads partition 0 of `topic`.
pub fn metadata(addr: &str, topic: &str) -> Vec<u8> {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut b = 0i32.to_be_bytes().to_vec(); // throttle_time_ms
    uvarint(&mut b, 2); // one broker
    b.extend_from_slice(&1i32.to_be_bytes());
    compact_str(&mut b, host);
    b.extend_from_slice(&port.parse::<i32>().unwrap().to_be_bytes());
    b.push(0); // rack: null
    b.push(0);
    b.push(0); // cluster_id: null
    b.extend_from_slice(&1i32.to_be_bytes()); // controller_id
    uvarint(&mut b, 2); // one topic
    b.extend_from_slice(&0i16.to_be_bytes());
    compact_str(&mut b, topic);
    b.extend_from_slice(&[7; 16]); // topic_id
    b.push(0); // is_internal
    uvarint(&mut b, 2); // one partition
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition_index
    b.extend_from_slice(&1i32.to_be_bytes()); // leader_id
    b.extend_from_slice(&0i32.to_be_bytes()); // leader_epoch
    for _ in 0..2 {
        uvarint(&mut b, 2); // replicas, isr: node 1
        b.extend_from_slice(&1i32.to_be_bytes());
    }
    uvarint(&mut b, 1); // offline replicas: none
    b.push(0);
    b.extend_from_slice(&0i32.to_be_bytes()); // topic_authorized_operations
    b.push(0);
    b.push(0);
    b
}

/// Fetch v12: partition 0 of `topic` with `records`.
pub fn fetch(topic: &str, records: &[u8]) -> Vec<u8> {
    let mut b = 0i32.to_be_bytes().to_vec(); // throttle_time_ms
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // session_id
    uvarint(&mut b, 2); // one topic
    compact_str(&mut b, topic);
    uvarint(&mut b, 2); // one partition
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    for _ in 0..3 {
        b.extend_from_slice(&100i64.to_be_bytes()); // high watermark, LSO, log start
    }
    b.push(0); // aborted_transactions: null
    b.extend_from_slice(&(-1i32).to_be_bytes()); // preferred_read_replica
    uvarint(&mut b, records.len() as u32 + 1);
    b.extend_from_slice(records);
    b.push(0);
    b.push(0);
    b.push(0);
    b
}

/// An uncompressed v2 batch at offset 0 with one record "v", announcing `count` records,
/// its CRC valid.
pub fn batch(count: i32) -> Vec<u8> {
    let record = [14u8, 0, 0, 0, 1, 2, b'v', 0];
    let mut b = 0i64.to_be_bytes().to_vec();
    b.extend_from_slice(&((49 + record.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // CRC below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&1i64.to_be_bytes());
    b.extend_from_slice(&1i64.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&record);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A transport on the fake broker at `addr`, with short bounds.
pub fn transport(addr: &str) -> ModernTransport {
    let mut c = Config {
        brokers: vec![addr.to_string()],
        transport: TransportKind::Modern,
        client_id: "ks-decoders".into(),
        ..Config::default()
    };
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(3);
    ModernTransport::new(&c).expect("transport")
}

/// A fake broker answering ApiVersions, Metadata for `topic` and Fetch as given.
pub fn broker_with(
    topic: &'static str,
    api_versions_answer: fn() -> Vec<u8>,
    metadata_answer: Option<Vec<u8>>,
    fetch_answer: Vec<u8>,
) -> String {
    let addr = Arc::new(Mutex::new(String::new()));
    let seen = addr.clone();
    let answers: Answers = Arc::new(Mutex::new(Box::new(move |key, _| match key {
        API_VERSIONS => api_versions_answer(),
        METADATA => metadata_answer
            .clone()
            .unwrap_or_else(|| metadata(&seen.lock().unwrap(), topic)),
        _ => fetch_answer.clone(),
    })));
    let a = fake_broker(answers);
    *addr.lock().unwrap() = a.clone();
    a
}

pub fn read_once(addr: &str, topic: &str) -> kafka_sync::Result<Vec<ConsumedRecord>> {
    let mut positions = BTreeMap::from([(0, 0)]);
    transport(addr).read(topic, &mut positions, Duration::from_millis(300))
}

/// A "broker" that answers the first request on every connection with `raw` as is (no
/// frame of its own: `raw` is read as size, header and body), then hangs up.
pub fn raw_broker(raw: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut size = [0u8; 4];
            if s.read_exact(&mut size).is_err() {
                continue;
            }
            let mut request = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
            let _ = s.read_exact(&mut request);
            let _ = s.write_all(&raw);
        }
    });
    addr
}
