//! What every scenario shares: the broker address, sizes, the 234-byte envelope, topics,
//! the alternating duel of ours against a peer, and process CPU / memory readings.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_sync::domain::{KafkaMessage, MessageType};
use kafka_sync::{Config, Consumer, Kafka, Producer};

pub const ENVELOPE_BYTES: usize = 234;

/// The 3-node cluster of scenario (k): `BENCH_CLUSTER` or `tests/broker/cluster.sh`'s nodes.
pub fn cluster_brokers() -> Vec<String> {
    std::env::var("BENCH_CLUSTER")
        .unwrap_or_else(|_| "127.0.0.1:9192,127.0.0.1:9292,127.0.0.1:9392".into())
        .split(',')
        .map(str::to_string)
        .collect()
}

pub fn brokers() -> Vec<String> {
    std::env::var("KAFKA_TEST_BROKERS")
        .or_else(|_| std::env::var("KAFKA_BROKERS"))
        .unwrap_or_else(|_| "127.0.0.1:9092".into())
        .split(',')
        .map(str::to_string)
        .collect()
}

/// `n` shrunk by `BENCH_SCALE` (e.g. `BENCH_SCALE=0.1` for a quick look).
pub fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(1)
}

/// How many times each duel runs (`BENCH_PASSES`, default 2); the best pass of each side
/// counts.
pub fn passes() -> usize {
    std::env::var("BENCH_PASSES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2usize)
        .max(1)
}

/// The one place the bench builds its producers: the front door's shared producer.
pub fn connect_producer(config: &Config) -> Arc<Producer> {
    Kafka::connect(config.clone())
        .expect("bench producer connects")
        .producer()
}

/// A consumer through the front door (group `config.group_id`).
pub fn connect_consumer(config: &Config) -> Consumer {
    Kafka::connect(config.clone())
        .and_then(|k| k.consumer())
        .expect("bench consumer connects")
}

/// A message whose encoded envelope is exactly `ENVELOPE_BYTES` long.
pub fn envelope() -> KafkaMessage {
    let mut pad = String::new();
    loop {
        let mut m =
            KafkaMessage::from_json(MessageType::new("bench"), serde_json::json!({ "pad": pad }))
                .with_correlation_id("bench");
        // A fixed time with a whole microsecond count: the text form's length varies with
        // the fraction's digits.
        m.created_at = std::time::UNIX_EPOCH + Duration::from_micros(1_764_600_000_123_456);
        let len = m.to_bytes().unwrap().len();
        if len >= ENVELOPE_BYTES {
            assert_eq!(
                len, ENVELOPE_BYTES,
                "cannot pad the envelope to {ENVELOPE_BYTES} bytes"
            );
            return m;
        }
        pad.push('x');
    }
}

pub fn fresh(m: &KafkaMessage) -> KafkaMessage {
    let mut c = m.clone();
    c.id = uuid::Uuid::new_v4();
    c
}

pub fn topic(name: &str) -> String {
    format!("bench-{name}-{}", uuid::Uuid::new_v4().simple())
}

/// A new topic, created (and its writer started) by one untimed send, so that neither
/// side's timing includes topic creation.
pub fn warm_topic(producer: &Producer, name: &str, msg: &KafkaMessage) -> String {
    let t = topic(name);
    producer.send(&t, &fresh(msg)).expect("warm-up send");
    t
}

pub fn group() -> String {
    format!("bench-group-{}", uuid::Uuid::new_v4().simple())
}

/// One measurement: a rate and, for latency scenarios, p50 / p99.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub rate: f64,
    pub latency: Option<(Duration, Duration)>,
    /// Process CPU seconds the measured work took (ours: this process; a Java tool: its
    /// process), when measured.
    pub cpu: Option<f64>,
}

impl Measured {
    pub fn rate(rate: f64) -> Self {
        Measured {
            rate,
            ..Default::default()
        }
    }
}

/// Runs `ours` and `peer` of `scenario` [`passes`] times, alternating which goes first, and keeps each
/// side's best pass (noise on a shared machine only ever slows a pass down). CPU is the
/// least any pass took.
pub fn duel(
    scenario: &str,
    mut ours: impl FnMut() -> Measured,
    mut peer: impl FnMut() -> Measured,
) -> (Measured, Measured) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut ours = |pass: usize| {
        eprintln!("bench: ({scenario}) pass {pass}: ours");
        ours()
    };
    let mut peer = |pass: usize| {
        eprintln!("bench: ({scenario}) pass {pass}: peer");
        peer()
    };
    for pass in 0..passes() {
        if pass % 2 == 0 {
            a.push(ours(pass));
            b.push(peer(pass));
        } else {
            b.push(peer(pass));
            a.push(ours(pass));
        }
    }
    (best(a), best(b))
}

fn best(all: Vec<Measured>) -> Measured {
    let cpu = all
        .iter()
        .filter_map(|m| m.cpu)
        .min_by(|x, y| x.total_cmp(y));
    let mut top = all
        .into_iter()
        .max_by(|x, y| x.rate.total_cmp(&y.rate))
        .expect("at least one pass");
    top.cpu = cpu;
    top
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn rusage(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(who, &mut u) };
    assert_eq!(rc, 0, "getrusage failed");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// User + system CPU seconds of this process so far (all its threads).
pub fn cpu_self() -> f64 {
    rusage(libc::RUSAGE_SELF)
}

/// User + system CPU seconds of this process's children that ended and were waited for.
pub fn cpu_children() -> f64 {
    rusage(libc::RUSAGE_CHILDREN)
}

/// This process's resident set in bytes (`VmRSS`).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Samples the resident set every 5 ms until stopped; [`RssWatch::stop`] gives the peak.
pub struct RssWatch {
    /// The resident set when the watch started, in MB.
    pub before: f64,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssWatch {
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let start = rss_bytes();
        let peak = Arc::new(AtomicU64::new(start));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RssWatch {
            before: start as f64 / 1e6,
            stop,
            peak,
            thread,
        }
    }

    /// The peak resident set seen, in MB (the process's whole resident set, the bench's own
    /// memory included).
    pub fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("rss watcher");
        self.peak.load(Ordering::Relaxed) as f64 / 1e6
    }
}
