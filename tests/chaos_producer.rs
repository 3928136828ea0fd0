//! Producer chaos scenarios (issue 8), run by `tests/chaos/run.sh` (`make chaos`; the short
//! version, `CHAOS_SHORT=1`, inside `make test`), one at a time, against the 3-node cluster
//! (127.0.0.1:9192/9292/9392, RF 3, min ISR 2) or single brokers of their own on
//! 9130-9149. Each prints one `chaos-scenario:` line (see `chaos_support`) and checks its
//! own expectations; acknowledged messages are counted by id through Kafka's Java consumer.

mod chaos_support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaos_support::proxy::StallProxy;
use chaos_support::{
    cluster, duplicates, id_counts_on_topic, missing, random_topic, scale, Report, SingleBroker,
};
use kafka_sync::domain::{KafkaMessage, MessageType};
use kafka_sync::transport::{partition_for_key, ModernTransport, Transport};
use kafka_sync::{Config, ErrorKind, Kafka, Producer};
use uuid::Uuid;

/// A config for `brokers` on the modern transport, library defaults otherwise (acks=all,
/// idempotence, delivery timeout 120 s), then `change`.
fn config(brokers: &[String], change: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config {
        brokers: brokers.to_vec(),
        client_id: "kafka-sync-chaos".into(),
        ..Config::default()
    };
    change(&mut c);
    c
}

/// The one place scenarios connect: the front door's producer.
fn connect(config: Config) -> (Kafka, Arc<Producer>) {
    let kafka = Kafka::connect(config).expect("connect");
    let producer = kafka.producer();
    (kafka, producer)
}

fn message(n: usize) -> KafkaMessage {
    KafkaMessage::from_json(MessageType::new("chaos"), serde_json::json!({ "n": n }))
}

fn create_topic(brokers: &[String], topic: &str, partitions: i32, replication: i16) {
    let t = ModernTransport::new(&config(brokers, |_| {})).expect("transport");
    t.ensure_topic(topic, partitions, replication)
        .expect("topic created");
}

/// Acknowledged ids and failures of many senders.
#[derive(Default)]
struct Tally {
    acked: Mutex<HashSet<Uuid>>,
    errors: Mutex<Vec<(Duration, String, ErrorKind)>>,
    /// Ids of the sends that failed (some may be on the topic all the same).
    failed: Mutex<HashSet<Uuid>>,
    sent: AtomicUsize,
}

impl Tally {
    fn send(&self, producer: &Producer, topic: &str, m: &KafkaMessage) -> bool {
        let started = Instant::now();
        let r = producer.send(topic, m);
        self.sent.fetch_add(1, Ordering::SeqCst);
        match r {
            Ok(_) => {
                self.acked.lock().unwrap().insert(m.id);
                true
            }
            Err(e) => {
                self.failed.lock().unwrap().insert(m.id);
                let took = started.elapsed();
                self.errors
                    .lock()
                    .unwrap()
                    .push((took, e.to_string(), e.kind()));
                false
            }
        }
    }

    fn report(&self, name: &'static str, bootstrap: &[String], topic: &str) -> Report {
        let acked = self.acked.lock().unwrap().clone();
        let counts = id_counts_on_topic(bootstrap, topic, Duration::from_secs(90));
        let on_topic: HashSet<Uuid> = counts.keys().copied().collect();
        let failed = self.failed.lock().unwrap();
        if !failed.is_empty() {
            println!(
                "  {} of {} failed send(s) are on the topic all the same (an attempt was in \
                 flight when they timed out)",
                failed.intersection(&on_topic).count(),
                failed.len()
            );
        }
        Report {
            name,
            acked: acked.len(),
            lost: missing(&acked, &on_topic),
            duplicated: duplicates(&counts),
            errors: self.errors.lock().unwrap().len(),
        }
    }

    fn first_errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap()
            .iter()
            .take(3)
            .map(|(t, e, _)| format!("after {t:?}: {e}"))
            .collect()
    }
}

/// Scenario 1: The leader of a partition is `kill -9`ed during 8 threads of synchronous sends and
/// restarted 20 s later: every send carries through the election (0 errors), nothing
/// acknowledged is lost.
#[test]
#[ignore = "chaos: run by tests/chaos/run.sh"]
fn leader_killed_during_synchronous_sends() {
    let brokers = cluster::brokers();
    let topic = random_topic("chaos-leader");
    create_topic(&brokers, &topic, 3, 3);
    let (kafka, producer) = connect(config(&brokers, |_| {}));
    const THREADS: usize = 8;
    let per_thread = scale(3_000, 400);
    let total = THREADS * per_thread;
    let tally = Arc::new(Tally::default());
    let victim = cluster::leader(&topic, 0);
    let killed_at = Arc::new(Mutex::new(None::<usize>));
    let killer = {
        let (tally, killed_at) = (tally.clone(), killed_at.clone());
        std::thread::spawn(move || {
            while tally.sent.load(Ordering::SeqCst) < total / 5 {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _restart = cluster::Restart(victim);
            cluster::kill(victim);
            *killed_at.lock().unwrap() = Some(tally.sent.load(Ordering::SeqCst));
            std::thread::sleep(Duration::from_secs(20));
        })
    };
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (tally, producer, topic) = (tally.clone(), producer.clone(), topic.clone());
            std::thread::spawn(move || {
                for n in 0..per_thread {
                    let m = message(t * per_thread + n).with_key(format!("k-{t}-{}", n % 17));
                    tally.send(&producer, &topic, &m);
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    killer.join().unwrap();
    let killed_at = killed_at.lock().unwrap().expect("the leader was killed");
    let report = tally.report("leader-killed", &brokers, &topic);
    report.print();
    println!(
        "  node {victim} (leader of partition 0) killed after {killed_at} of {total} sends; first errors: {:?}",
        tally.first_errors()
    );
    kafka.close(Duration::from_secs(10)).unwrap();
    assert!(killed_at < total, "the kill came after the last send");
    assert_eq!(report.lost, 0, "acknowledged messages lost");
    assert_eq!(report.errors, 0, "{:?}", tally.first_errors());
    assert_eq!(report.acked, total);
}

/// Scenario 2: A single broker is `kill -9`ed and restarted during sends: sends while it is down fail
/// within their bound, the same producer works after the restart, nothing acknowledged is
/// lost.
#[test]
#[ignore = "chaos: run by tests/chaos/run.sh"]
fn single_broker_killed_and_restarted() {
    let broker = SingleBroker::up(9130, None);
    let brokers = vec![broker.addr()];
    let topic = random_topic("chaos-single");
    let delivery = Duration::from_secs(8);
    let (kafka, producer) = connect(config(&brokers, |c| {
        c.request_timeout = Duration::from_secs(4);
        c.connect_timeout = Duration::from_secs(1);
        c.producer.delivery_timeout = delivery;
    }));
    let tally = Tally::default();
    let before = scale(2_000, 300);
    for n in 0..before {
        tally.send(&producer, &topic, &message(n));
    }
    broker.kill();
    let down_until = Instant::now() + Duration::from_secs(12);
    let mut n = before;
    while Instant::now() < down_until {
        tally.send(&producer, &topic, &message(n));
        n += 1;
    }
    let failed_while_down = tally.errors.lock().unwrap().len();
    broker.start();
    let acked_before = tally.acked.lock().unwrap().len();
    let after = scale(2_000, 300);
    for _ in 0..after {
        tally.send(&producer, &topic, &message(n));
        n += 1;
    }
    let acked_after = tally.acked.lock().unwrap().len() - acked_before;
    let report = tally.report("single-broker-restart", &brokers, &topic);
    report.print();
    let slowest = tally
        .errors
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.0)
        .max()
        .unwrap_or_default();
    println!(
        "  {failed_while_down} send(s) failed while the broker was down, the slowest after \
         {slowest:?} (bound {delivery:?}); {acked_after} of {after} acknowledged after the restart"
    );
    kafka.close(Duration::from_secs(10)).unwrap();
    assert_eq!(report.lost, 0);
    assert!(
        failed_while_down > 0,
        "no send failed while the broker was down"
    );
    assert!(
        slowest <= delivery + Duration::from_secs(1),
        "a failing send took {slowest:?}"
    );
    assert!(
        acked_after >= after * 9 / 10,
        "the producer did not recover: {acked_after} of {after}"
    );
}

/// Scenario 3: A TCP proxy between client and broker stalls all traffic for 30 s: calls fail within
/// their bounds with `Timeout`, no thread hangs, traffic resumes afterwards by itself.
#[test]
#[ignore = "chaos: run by tests/chaos/run.sh"]
fn network_stalled_for_30_seconds() {
    let broker = SingleBroker::up(9140, Some(9142));
    let proxy = StallProxy::start(9142, &broker.addr());
    let brokers = vec![proxy.addr()];
    let topic = random_topic("chaos-stall");
    let delivery = Duration::from_secs(6);
    let (kafka, producer) = connect(config(&brokers, |c| {
        c.request_timeout = Duration::from_secs(3);
        c.connect_timeout = Duration::from_secs(2);
        c.producer.delivery_timeout = delivery;
    }));
    let tally = Arc::new(Tally::default());
    for n in 0..scale(500, 100) {
        tally.send(&producer, &topic, &message(n));
    }
    let stall = Duration::from_secs(scale(30, 12) as u64);
    proxy.stall(true);
    let stalled_until = Instant::now() + stall;
    let counter = Arc::new(AtomicUsize::new(1_000_000));
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let (tally, producer, topic, counter) = (
                tally.clone(),
                producer.clone(),
                topic.clone(),
                counter.clone(),
            );
            std::thread::spawn(move || {
                while Instant::now() < stalled_until {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    tally.send(&producer, &topic, &message(n));
                }
            })
        })
        .collect();
    // A health check during the stall is bounded too.
    let started = Instant::now();
    let healthy = producer.health().is_healthy();
    let health_took = started.elapsed();
    for s in senders {
        s.join().unwrap();
    }
    let during = tally.errors.lock().unwrap().clone();
    proxy.stall(false);
    let resumed = Instant::now();
    let mut first_ok = None;
    for n in 2_000_000..2_000_000 + scale(500, 100) {
        if tally.send(&producer, &topic, &message(n)) && first_ok.is_none() {
            first_ok = Some(resumed.elapsed());
        }
    }
    let report = tally.report("network-stall", &brokers, &topic);
    report.print();
    let slowest = during.iter().map(|e| e.0).max().unwrap_or_default();
    println!(
        "  stall {stall:?}: {} send(s) failed, the slowest after {slowest:?} (bound {delivery:?}); \
         health during the stall: {healthy} in {health_took:?}; first ack {first_ok:?} after resuming",
        during.len()
    );
    kafka.close(Duration::from_secs(10)).unwrap();
    assert_eq!(report.lost, 0);
    assert!(!during.is_empty(), "nothing failed during the stall");
    assert!(
        during.iter().all(|e| e.2 == ErrorKind::Timeout),
        "{:?}",
        tally.first_errors()
    );
    assert!(slowest <= delivery + Duration::from_secs(1), "{slowest:?}");
    assert!(
        !healthy && health_took < Duration::from_secs(8),
        "{health_took:?}"
    );
    assert!(
        first_ok.is_some_and(|t| t < delivery),
        "traffic did not resume: {first_ok:?}"
    );
}

/// Scenario 4: A bootstrap list naming a dead and a live broker, and a cluster whose only bootstrap
/// broker dies after start: the client finds the others from metadata, no send fails.
#[test]
#[ignore = "chaos: run by tests/chaos/run.sh"]
fn bootstrap_brokers_dead_or_dying() {
    let tally = Tally::default();
    // (a) one dead, one live.
    let topic_a = random_topic("chaos-boot-a");
    let mixed = vec!["127.0.0.1:9149".to_string(), cluster::addr(2)];
    let (kafka, producer) = connect(config(&mixed, |_| {}));
    for n in 0..scale(1_000, 200) {
        tally.send(&producer, &topic_a, &message(n));
    }
    kafka.close(Duration::from_secs(10)).unwrap();
    // (b) the only bootstrap broker dies after the producer learned the cluster.
    let topic_b = random_topic("chaos-boot-b");
    create_topic(&cluster::brokers(), &topic_b, 3, 3);
    let bootstrap = 1;
    let (kafka, producer) = connect(config(&[cluster::addr(bootstrap)], |_| {}));
    for n in 0..scale(500, 100) {
        tally.send(&producer, &topic_b, &message(n));
    }
    let restart = cluster::Restart(bootstrap);
    cluster::kill(bootstrap);
    for n in 0..scale(1_000, 200) {
        tally.send(&producer, &topic_b, &message(10_000 + n));
    }
    drop(restart);
    kafka.close(Duration::from_secs(10)).unwrap();
    let acked = tally.acked.lock().unwrap().clone();
    let mut counts = id_counts_on_topic(&cluster::brokers(), &topic_a, Duration::from_secs(60));
    counts.extend(id_counts_on_topic(
        &cluster::brokers(),
        &topic_b,
        Duration::from_secs(60),
    ));
    let on_topic: HashSet<Uuid> = counts.keys().copied().collect();
    let report = Report {
        name: "bootstrap-dead-or-dying",
        acked: acked.len(),
        lost: missing(&acked, &on_topic),
        duplicated: duplicates(&counts),
        errors: tally.errors.lock().unwrap().len(),
    };
    report.print();
    assert_eq!(report.lost, 0);
    assert_eq!(report.errors, 0, "{:?}", tally.first_errors());
}

/// A listener that answers every connection with an HTTP error and closes it: a port where
/// something other than Kafka listens.
fn not_kafka(port: u16) -> Arc<AtomicBool> {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("port free");
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((mut c, _)) => {
                    let _ = c.set_nonblocking(false);
                    let _ = c.read(&mut [0u8; 512]);
                    let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    stop
}

/// Scenario 5: No broker at start, a port where something else listens, an unresolvable host: clear
/// errors within the bound.
#[test]
#[ignore = "chaos: run by tests/chaos/run.sh"]
fn no_broker_wrong_port_unresolvable_host() {
    let stop = not_kafka(9148);
    let delivery = Duration::from_secs(5);
    let mut errors = 0;
    let cases = [
        ("127.0.0.1:9147", "9147"),
        ("127.0.0.1:9148", "9148"),
        ("no-such-host.invalid:9092", "resolve"),
    ];
    for (addr, named) in cases {
        let (kafka, producer) = connect(config(&[addr.to_string()], |c| {
            c.request_timeout = Duration::from_secs(2);
            c.connect_timeout = Duration::from_secs(1);
            c.producer.delivery_timeout = delivery;
        }));
        let started = Instant::now();
        let e = producer
            .send(&random_topic("chaos-nowhere"), &message(1))
            .unwrap_err();
        let took = started.elapsed();
        let health = producer.health();
        let health_took = started.elapsed() - took;
        println!("  {addr}: {:?} after {took:?}: {e}", e.kind());
        errors += 1;
        assert!(
            took <= delivery + Duration::from_secs(1),
            "{addr}: {took:?}"
        );
        assert!(
            e.to_string().contains(named),
            "{addr}: the error does not name {named}: {e}"
        );
        assert!(!health.is_healthy());
        assert!(
            health_took < Duration::from_secs(8),
            "health took {health_took:?}"
        );
        kafka.close(Duration::from_secs(5)).unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    Report {
        name: "no-broker-wrong-port-bad-host",
        acked: 0,
        lost: 0,
        duplicated: 0,
        errors,
    }
    .print();
}

/// Scenario 6: Partitions added to a topic while producing: once the metadata is older than
/// `metadata_max_age`, keyed records land where the Java client's partitioner puts them on
/// the new partition count, and the new partitions are read.
#[test]
#[ignore = "chaos: run by tests/chaos/run.sh"]
fn partitions_added_while_producing() {
    let brokers = cluster::brokers();
    let topic = random_topic("chaos-grow");
    create_topic(&brokers, &topic, 2, 3);
    let max_age = Duration::from_secs(3);
    let (kafka, producer) = connect(config(&brokers, |c| c.metadata_max_age = max_age));
    let tally = Tally::default();
    let key = |n: usize| format!("key-{}", n % 50);
    let phase = scale(1_000, 200);
    let mut misplaced = 0;
    for n in 0..phase {
        let m = message(n).with_key(key(n));
        tally.send(&producer, &topic, &m);
    }
    cluster::add_partitions(&topic, 4);
    let grown = Instant::now();
    let mut n = phase;
    // Keep producing while the old metadata ages out.
    while grown.elapsed() < max_age + Duration::from_secs(2) {
        tally.send(&producer, &topic, &message(n).with_key(key(n)));
        n += 1;
    }
    let mut on_new = 0;
    for _ in 0..phase {
        let m = message(n).with_key(key(n));
        match producer.send(&topic, &m) {
            Ok(d) => {
                tally.acked.lock().unwrap().insert(m.id);
                if d.partition != partition_for_key(key(n).as_bytes(), 4) {
                    misplaced += 1;
                }
                on_new += usize::from(d.partition >= 2);
            }
            Err(e) => tally
                .errors
                .lock()
                .unwrap()
                .push((Duration::ZERO, e.to_string(), e.kind())),
        }
        n += 1;
    }
    let read = chaos_support::read_back_from(
        &brokers.join(","),
        &topic,
        chaos_support::ALL,
        Duration::from_secs(20),
    );
    let partitions: HashSet<i32> = read.iter().map(|r| r.partition).collect();
    let report = tally.report("partitions-added", &brokers, &topic);
    report.print();
    println!(
        "  after growing to 4 partitions and {max_age:?}: {misplaced} of {phase} keyed records \
         misplaced, {on_new} on the new partitions; partitions read back: {partitions:?}"
    );
    kafka.close(Duration::from_secs(10)).unwrap();
    assert_eq!(report.lost, 0);
    assert_eq!(report.errors, 0, "{:?}", tally.first_errors());
    assert_eq!(misplaced, 0);
    assert!(on_new > 0);
    assert_eq!(partitions.len(), 4, "{partitions:?}");
}
