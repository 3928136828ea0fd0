//! Consumer groups on the modern transport, against Apache Kafka 3.9.1 and 4.1.2: three
//! members share a 6-partition topic two partitions each; one leaves and the other two take
//! its partitions within a few seconds; every record is handled at least once, and no
//! partition is ever handled by two members at the same time.

mod modern_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kafka_sync::transport::{ModernTransport, OutgoingRecord, ProduceOptions, Transport};
use kafka_sync::{Acks, Assignor, Compression, StartOffset};
use modern_support::{random_name, subscribe, Broker};

/// One member's view over time.
#[derive(Debug, Default)]
struct Log {
    /// `(when the poll ended, assignment after it)`, one entry per change.
    assignments: Vec<(Instant, Vec<i32>)>,
    /// `(poll started, poll ended)` of every poll.
    polls: Vec<(Instant, Instant)>,
    /// `(partition, offset)` of every record handled.
    handled: Vec<(i32, i64)>,
    /// When the member closed.
    closed: Option<Instant>,
}

impl Log {
    fn current(&self) -> Vec<i32> {
        self.assignments
            .last()
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }

    /// Per partition, the spans during which this member may have handled its records: from
    /// the end of the poll that gave it the partition to the start of the poll that took it
    /// away (or the close).
    fn ownership(&self) -> Vec<(i32, Instant, Instant)> {
        let mut spans = Vec::new();
        let mut since: BTreeMap<i32, Instant> = BTreeMap::new();
        for (ended, assignment) in &self.assignments {
            let started = self
                .polls
                .iter()
                .find(|(_, e)| e == ended)
                .map(|(s, _)| *s)
                .unwrap_or(*ended);
            for (&p, &from) in since.clone().iter() {
                if !assignment.contains(&p) {
                    spans.push((p, from, started));
                    since.remove(&p);
                }
            }
            for &p in assignment {
                since.entry(p).or_insert(*ended);
            }
        }
        let end = self.closed.unwrap_or_else(Instant::now);
        spans.extend(since.into_iter().map(|(p, from)| (p, from, end)));
        spans
    }
}

/// A member on its own thread: polls, "handles" (records), commits after each poll.
struct Member {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Member {
    fn start(t: Arc<ModernTransport>, topic: &str, group: &str, name: &str) -> Member {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Log::default()));
        let (topic, group) = (topic.to_string(), group.to_string());
        let handle = thread::Builder::new()
            .name(format!("member-{name}"))
            .spawn({
                let (stop, log) = (stop.clone(), log.clone());
                move || {
                    let mut sub = subscribe(t.as_ref(), &topic, &group, StartOffset::Earliest);
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let records = match sub.poll(Duration::from_millis(200)) {
                            Ok(r) => r,
                            Err(e) => {
                                eprintln!("poll failed (retrying): {e}");
                                thread::sleep(Duration::from_millis(100));
                                continue;
                            }
                        };
                        let ended = Instant::now();
                        let assignment = sub.assignment();
                        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
                        {
                            let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                            l.polls.push((started, ended));
                            if l.current() != assignment || l.assignments.is_empty() {
                                l.assignments.push((ended, assignment.clone()));
                            }
                            for r in &records {
                                assert!(
                                    assignment.contains(&r.partition),
                                    "a record of an unassigned partition"
                                );
                                l.handled.push((r.partition, r.offset));
                                next.insert(r.partition, r.offset + 1);
                            }
                        }
                        let offsets: Vec<(i32, i64)> = next.into_iter().collect();
                        if let Err(e) = sub.commit(&offsets) {
                            eprintln!("commit failed (records will be read again): {e}");
                        }
                    }
                    let closed = Instant::now();
                    sub.close().expect("leave the group");
                    log.lock().unwrap_or_else(|p| p.into_inner()).closed = Some(closed);
                }
            })
            .expect("spawn member");
        Member {
            stop,
            log,
            handle: Some(handle),
        }
    }

    fn assignment(&self) -> Vec<i32> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).current()
    }

    fn close(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("member thread");
        }
    }
}

/// Waits until `check` holds, at most `timeout`; returns how long it took.
fn wait_for(what: &str, timeout: Duration, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {timeout:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

fn rebalancing(broker: Broker, assignor: Assignor) {
    let mut config = broker.config();
    config.consumer.assignor = assignor;
    let t = Arc::new(ModernTransport::new(&config).expect("transport"));
    let topic = random_name("groups");
    assert_eq!(t.ensure_topic(&topic, 6, 1).unwrap(), 6);
    let group = random_name("group");

    // A producer writing to every partition all along.
    let producing = Arc::new(AtomicBool::new(true));
    let producer = thread::spawn({
        let (t, topic, producing) = (t.clone(), topic.clone(), producing.clone());
        move || {
            let mut session = t.connect_producer().unwrap();
            let options = ProduceOptions {
                acks: Acks::All,
                compression: Compression::None,
                timeout: Duration::from_secs(10),
            };
            let mut written = Vec::new();
            let mut n = 0u64;
            while producing.load(Ordering::Relaxed) {
                let batch: Vec<OutgoingRecord> = (0..6)
                    .map(|p| OutgoingRecord {
                        partition: p,
                        key: None,
                        value: format!("record {n}-{p}").into_bytes(),
                        headers: Vec::new(),
                    })
                    .collect();
                for r in session.produce(&topic, &batch, &options) {
                    let d = r.expect("produce");
                    written.push((d.partition, d.offset));
                }
                n += 1;
                thread::sleep(Duration::from_millis(20));
            }
            written
        }
    });

    let mut members: Vec<Member> = ["a", "b", "c"]
        .iter()
        .map(|n| Member::start(t.clone(), &topic, &group, n))
        .collect();
    let took = wait_for(
        "3 members with 2 partitions each",
        Duration::from_secs(20),
        || {
            let all: BTreeSet<i32> = members.iter().flat_map(|m| m.assignment()).collect();
            members.iter().all(|m| m.assignment().len() == 2) && all.len() == 6
        },
    );
    eprintln!("{broker:?}/{assignor:?}: 3 members own 2 partitions each after {took:?}");
    thread::sleep(Duration::from_millis(500));

    // One leaves gracefully: the other two own all six within a few seconds.
    members[2].close();
    let took = wait_for("2 members owning all 6", Duration::from_secs(5), || {
        let all: BTreeSet<i32> = members[..2].iter().flat_map(|m| m.assignment()).collect();
        all.len() == 6 && members[..2].iter().all(|m| m.assignment().len() == 3)
    });
    eprintln!("{broker:?}/{assignor:?}: after one left, the other two own all 6 in {took:?}");
    thread::sleep(Duration::from_millis(500));

    producing.store(false, Ordering::Relaxed);
    let written = producer.join().expect("producer");
    assert!(written.len() > 100, "the producer wrote {}", written.len());
    let handled = |members: &[Member]| -> BTreeSet<(i32, i64)> {
        members
            .iter()
            .flat_map(|m| {
                m.log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .handled
                    .clone()
            })
            .collect()
    };
    wait_for("every record handled", Duration::from_secs(10), || {
        let h = handled(&members);
        written.iter().all(|w| h.contains(w))
    });
    for m in &mut members {
        m.close();
    }

    // No partition had two owners at once.
    let mut spans: HashMap<i32, Vec<(usize, Instant, Instant)>> = HashMap::new();
    for (i, m) in members.iter().enumerate() {
        let log = m.log.lock().unwrap_or_else(|p| p.into_inner());
        for (p, from, to) in log.ownership() {
            spans.entry(p).or_default().push((i, from, to));
        }
    }
    for (p, list) in &spans {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if a.0 != b.0 {
                    assert!(
                        a.2 <= b.1 || b.2 <= a.1,
                        "partition {p} owned by members {} and {} at once",
                        a.0,
                        b.0
                    );
                }
            }
        }
    }
    let duplicates = members
        .iter()
        .map(|m| {
            m.log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .handled
                .len()
        })
        .sum::<usize>()
        - handled(&members).len();
    eprintln!(
        "{broker:?}/{assignor:?}: {} records written, all handled, {duplicates} handled twice",
        written.len()
    );
}

#[test]
fn three_members_share_six_partitions_and_two_take_over_when_one_leaves_on_kafka_3() {
    rebalancing(Broker::Kafka3, Assignor::Range);
}

#[test]
fn three_members_share_six_partitions_and_two_take_over_when_one_leaves_on_kafka_4() {
    rebalancing(Broker::Kafka4, Assignor::RoundRobin);
}

/// A member polling on its own thread: its assignment after each poll, whether it saw a
/// rebalance after `watch` was set.
struct Polling {
    assignment: Arc<Mutex<Vec<i32>>>,
    rebalanced: Arc<AtomicBool>,
    watch: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Polling {
    fn start(t: ModernTransport, topic: &str, group: &str) -> Polling {
        let mut sub = subscribe(&t, topic, group, StartOffset::Earliest);
        let assignment: Arc<Mutex<Vec<i32>>> = Arc::default();
        let (rebalanced, watch, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let thread = thread::spawn({
            let (assignment, rebalanced, watch, stop) = (
                assignment.clone(),
                rebalanced.clone(),
                watch.clone(),
                stop.clone(),
            );
            move || {
                let _t = t;
                while !stop.load(Ordering::SeqCst) {
                    sub.poll(Duration::from_millis(100)).expect("poll");
                    if watch.load(Ordering::SeqCst) && sub.rebalance_pending() {
                        rebalanced.store(true, Ordering::SeqCst);
                    }
                    let now = sub.assignment();
                    let mut a = assignment.lock().unwrap();
                    if watch.load(Ordering::SeqCst) && *a != now {
                        rebalanced.store(true, Ordering::SeqCst);
                    }
                    *a = now;
                }
                sub.close().expect("close");
            }
        });
        Polling {
            assignment,
            rebalanced,
            watch,
            stop,
            thread: Some(thread),
        }
    }

    fn assignment(&self) -> Vec<i32> {
        self.assignment.lock().unwrap().clone()
    }

    fn close(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("member thread");
        }
    }
}

/// Two static members on a 4-partition topic; one closes (static members do not leave)
/// and comes back under the same instance id within the session timeout: it gets the same
/// partitions and the other member never rebalances. (With dynamic members the close is a
/// LeaveGroup and the other member takes all four partitions.)
fn static_member_comes_back(broker: Broker) {
    let topic = random_name("static");
    let group = random_name("group");
    let transport_for = |instance: &str| {
        let mut config = broker.config();
        config.consumer.session_timeout = Duration::from_secs(10);
        config.consumer.group_instance_id = Some(instance.to_string());
        ModernTransport::new(&config).expect("transport")
    };
    let admin = transport_for("admin");
    assert_eq!(admin.ensure_topic(&topic, 4, 1).unwrap(), 4);
    let a = Polling::start(transport_for("a"), &topic, &group);
    let b = Polling::start(transport_for("b"), &topic, &group);
    wait_for("a 2 + 2 split", Duration::from_secs(40), || {
        a.assignment().len() == 2 && b.assignment().len() == 2
    });
    let (before_a, before_b) = (a.assignment(), b.assignment());
    b.watch.store(true, Ordering::SeqCst);
    a.close();
    thread::sleep(Duration::from_secs(2));
    let again = Polling::start(transport_for("a"), &topic, &group);
    wait_for("a back", Duration::from_secs(20), || {
        !again.assignment().is_empty()
    });
    assert_eq!(
        again.assignment(),
        before_a,
        "the same partitions, no reassignment"
    );
    assert_eq!(b.assignment(), before_b);
    assert!(
        !b.rebalanced.load(Ordering::SeqCst),
        "b saw a rebalance while a was away and back"
    );
    again.close();
    b.close();
}

#[test]
fn a_static_member_restarted_within_the_session_gets_its_partitions_back_on_kafka_3() {
    static_member_comes_back(Broker::Kafka3);
}

/// Issue 9: two members, 40,000 records queued, a handler of 0.5 ms: the second member used
/// to wait ~25 s for its partitions while the first worked through a whole poll (up to 10 MB
/// per partition). Rebalances are now seen between records: the first member commits what
/// ended and gives the partitions up within a heartbeat or two.
#[test]
fn a_second_member_gets_its_partitions_promptly_while_the_first_works_through_a_backlog() {
    use kafka_sync::domain::{KafkaMessage, MessageType};
    use kafka_sync::Kafka;
    let mut config = Broker::Kafka3.config();
    config.consumer.retry_topic_enabled = false;
    let topic = random_name("backlog");
    let admin = ModernTransport::new(&config).expect("transport");
    assert_eq!(admin.ensure_topic(&topic, 4, 1).unwrap(), 4);
    let kafka = Kafka::connect(config).expect("connect");
    let messages: Vec<KafkaMessage> = (0..40_000)
        .map(|n| KafkaMessage::from_json(MessageType::new("slow"), serde_json::json!({ "n": n })))
        .collect();
    for r in kafka.producer().send_batch(&topic, messages) {
        r.expect("written");
    }
    let member = || {
        let c = kafka.consumer().expect("consumer");
        c.register_handler("slow", |_m: &KafkaMessage| {
            thread::sleep(Duration::from_micros(500));
            Ok(())
        });
        c.consume([topic.clone()]).expect("consume");
        c
    };
    let handled = |c: &kafka_sync::Consumer| c.metrics().iter().map(|m| m.handled).sum::<u64>();
    let first = member();
    wait_for("the first member at work", Duration::from_secs(30), || {
        handled(&first) > 500
    });
    let second = member();
    let took = wait_for("the second member handles", Duration::from_secs(20), || {
        handled(&second) > 0
    });
    assert!(
        took < Duration::from_secs(10),
        "the second member waited {took:?}"
    );
    kafka.close(Duration::from_secs(30)).expect("close");
}
