//! A member that crashes (no LeaveGroup, heartbeats stop) against a real broker: the others
//! take over its partitions once the coordinator's session timeout expires, and a new member
//! brings the group back to two partitions each. It needs the subscription's private crash
//! hook, so it lives beside the code, marked `#[ignore]` so that `cargo test --lib` (`make
//! test-unit`) needs no broker; `tests/matrix.sh` runs it with `--ignored` against Apache
//! Kafka 4.1.2 on 127.0.0.1:9094 (`KAFKA4_TEST_BROKERS` overrides), where it fails, not
//! skips, without its broker.

use std::collections::BTreeSet;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::subscription::ModernSubscription;
use super::ModernTransport;
use crate::config::{Config, StartOffset};
use crate::transport::{SubscribeOptions, Subscription, Transport};

fn broker() -> Vec<String> {
    let list = std::env::var("KAFKA4_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9094".into());
    let reachable = list.split(',').any(|b| {
        b.trim()
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
    });
    assert!(
        reachable,
        "no Kafka broker at {list}: run `KAFKA_VERSION=4.1.2 KAFKA_PORT=9094 make kafka-up`"
    );
    list.split(',').map(|b| b.trim().to_string()).collect()
}

/// A member polling on its own thread until told to close or to crash.
struct Member {
    stop: Arc<AtomicBool>,
    crash: Arc<AtomicBool>,
    assignment: Arc<Mutex<Vec<i32>>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Member {
    fn start(t: &ModernTransport, topic: &str, group: &str) -> Member {
        let options = SubscribeOptions {
            group: group.into(),
            topic: topic.into(),
            client_id: "ks-crash-test".into(),
            start_offset: StartOffset::Earliest,
            min_bytes: 1,
            max_bytes: 100_000,
        };
        let mut sub = ModernSubscription::open(t.settings.clone(), options).unwrap();
        let (stop, crash) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let assignment = Arc::new(Mutex::new(Vec::new()));
        let handle = thread::Builder::new()
            .name("crash-test-member".into())
            .spawn({
                let (stop, crash, assignment) = (stop.clone(), crash.clone(), assignment.clone());
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Err(e) = sub.poll(Duration::from_millis(100)) {
                            eprintln!("poll failed (retrying): {e}");
                        }
                        *assignment.lock().unwrap_or_else(|p| p.into_inner()) = sub.assignment();
                    }
                    if crash.load(Ordering::Relaxed) {
                        sub.crash();
                    } else {
                        sub.close().unwrap();
                    }
                }
            })
            .unwrap();
        Member {
            stop,
            crash,
            assignment,
            handle: Some(handle),
        }
    }

    fn assignment(&self) -> Vec<i32> {
        self.assignment
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn end(&mut self, crash: bool) {
        self.crash.store(crash, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

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

fn two_each(members: &[&Member]) -> bool {
    let all: BTreeSet<i32> = members.iter().flat_map(|m| m.assignment()).collect();
    all.len() == 6
        && members
            .iter()
            .all(|m| m.assignment().len() == 6 / members.len())
}

#[test]
#[ignore = "needs Kafka 4.1.2 on 127.0.0.1:9094; tests/matrix.sh runs it with --ignored"]
fn a_crashed_member_is_replaced_within_the_session_timeout_and_a_new_one_rebalances_back() {
    let config = Config {
        brokers: broker(),
        request_timeout: Duration::from_secs(10),
        ..Config::default()
    };
    let session = Duration::from_secs(6); // the broker's smallest by default
    let mut config = config;
    config.consumer.session_timeout = session;
    config.consumer.heartbeat_interval = Duration::from_millis(500);
    config.consumer.rebalance_timeout = Duration::from_secs(10);
    let t = ModernTransport::new(&config).unwrap();
    let topic = format!("ks-crash-{}", uuid::Uuid::new_v4().simple());
    let group = format!("ks-crash-group-{}", uuid::Uuid::new_v4().simple());
    t.ensure_topic(&topic, 6, 1).unwrap();

    let mut a = Member::start(&t, &topic, &group);
    let mut b = Member::start(&t, &topic, &group);
    let mut c = Member::start(&t, &topic, &group);
    wait_for("2 partitions each", Duration::from_secs(15), || {
        two_each(&[&a, &b, &c])
    });

    c.end(true);
    let took = wait_for(
        "the survivors own all 6",
        session + Duration::from_secs(4),
        || two_each(&[&a, &b]),
    );
    eprintln!("after a crash, the other two own all 6 in {took:?} (session {session:?})");

    let mut d = Member::start(&t, &topic, &group);
    wait_for("back to 2 each", Duration::from_secs(10), || {
        two_each(&[&a, &b, &d])
    });
    for m in [&mut a, &mut b, &mut d] {
        m.end(false);
    }
}
