//! The memory broker's groups are as strict as Kafka's: eager revoke-then-assign,
//! generation-checked commits, session and rebalance timeouts, static members, and the
//! fault hooks (a write failing after it was stored, polls failing after a rejoin).

use std::time::{Duration, Instant};

use super::MemoryTransport;
use crate::config::{Acks, Compression, StartOffset};
use crate::error::ErrorKind;
use crate::transport::{OutgoingRecord, ProduceOptions, SubscribeOptions, Subscription, Transport};

const SHORT: Duration = Duration::from_millis(20);

fn options(group: &str, topic: &str) -> SubscribeOptions {
    SubscribeOptions {
        group: group.into(),
        topic: topic.into(),
        client_id: "test".into(),
        start_offset: StartOffset::Earliest,
        min_bytes: 1,
        max_bytes: 1_000_000,
    }
}

fn produce(t: &MemoryTransport, topic: &str, partition: i32, count: usize) {
    let records: Vec<OutgoingRecord> = (0..count)
        .map(|i| OutgoingRecord {
            partition,
            key: None,
            value: format!("v{i}").into_bytes(),
            headers: Vec::new(),
        })
        .collect();
    let options = ProduceOptions {
        acks: Acks::All,
        compression: Compression::None,
        timeout: Duration::from_secs(1),
    };
    for r in t
        .connect_producer()
        .unwrap()
        .produce(topic, &records, &options)
    {
        r.unwrap();
    }
}

/// Polls `sub` until `done` holds (at most 5 s); returns the records read meanwhile.
fn poll_until(
    sub: &mut dyn Subscription,
    mut done: impl FnMut(&dyn Subscription) -> bool,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = 0;
    while !done(sub) {
        assert!(Instant::now() < deadline, "condition never held");
        got += sub.poll(SHORT).unwrap().len();
    }
    got
}

#[test]
fn nobody_gets_a_partition_before_its_owner_gave_it_up() {
    let t = MemoryTransport::new();
    t.create_topic("jobs", 2).unwrap();
    produce(&t, "jobs", 1, 3);
    let mut a = t.subscribe(options("g", "jobs")).unwrap();
    assert_eq!(a.assignment(), [0, 1]);
    let mut b = t.subscribe(options("g", "jobs")).unwrap();
    // b waits: a still owns both partitions until its next poll, and is told to commit.
    assert!(b.poll(SHORT).unwrap().is_empty());
    assert!(b.assignment().is_empty());
    assert!(a.rebalance_pending());
    a.commit(&[(1, 1)])
        .expect("the owner's commit before it gives up is accepted");
    // a's next poll gives both up and takes its share of the new generation.
    a.poll(SHORT).unwrap();
    assert_eq!(a.assignment(), [0]);
    assert!(!a.rebalance_pending());
    let from_b = poll_until(b.as_mut(), |s| s.assignment() == [1]);
    let from_b = from_b + poll_until(b.as_mut(), |_| true) + b.poll(SHORT).unwrap().len();
    assert_eq!(from_b, 2, "b starts at a's commit");
}

#[test]
fn a_member_that_does_not_rejoin_in_time_is_dropped_and_its_commit_refused() {
    let t = MemoryTransport::new();
    t.set_group_timeouts(Duration::from_secs(30), Duration::from_millis(200));
    t.create_topic("jobs", 1).unwrap();
    produce(&t, "jobs", 0, 4);
    let mut a = t.subscribe(options("g", "jobs")).unwrap();
    a.commit(&[(0, 3)]).unwrap();
    let mut b = t.subscribe(options("g", "jobs")).unwrap();
    let started = Instant::now();
    poll_until(b.as_mut(), |s| s.assignment() == [0]);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let refused = a.commit(&[(0, 1)]).unwrap_err();
    assert_eq!(
        refused.broker_code(),
        Some(25),
        "UNKNOWN_MEMBER_ID: {refused}"
    );
    assert_eq!(refused.kind(), ErrorKind::BrokerRetriable);
    assert_eq!(t.committed("g", "jobs", 0), Some(3));
    // Its next poll joins again as a new member (a rebalance b takes part in).
    a.poll(SHORT).unwrap();
    poll_until(b.as_mut(), |s| {
        !s.rebalance_pending() && s.assignment() == [0]
    });
}

#[test]
fn a_member_gone_without_leaving_is_removed_once_its_session_runs_out() {
    let t = MemoryTransport::new();
    t.set_group_timeouts(Duration::from_millis(300), Duration::from_secs(30));
    t.create_topic("jobs", 2).unwrap();
    let mut a = t.subscribe_static(options("g", "jobs"), "svc-a").unwrap();
    let mut b = t.subscribe(options("g", "jobs")).unwrap();
    a.poll(SHORT).unwrap();
    poll_until(b.as_mut(), |s| s.assignment() == [1]);
    // An open member never expires, however long it stays silent (a heartbeat thread
    // would keep it alive through a long handler call).
    std::thread::sleep(Duration::from_millis(400));
    b.poll(SHORT).unwrap();
    assert_eq!(b.assignment(), [1]);
    assert_eq!(a.assignment(), [0]);
    // A static member closes without leaving: its partition waits for it for the session.
    a.close().unwrap();
    let started = Instant::now();
    poll_until(b.as_mut(), |s| s.assignment() == [0, 1]);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[test]
fn a_static_member_back_under_its_instance_id_takes_its_partitions_without_a_rebalance() {
    let t = MemoryTransport::new();
    t.create_topic("jobs", 2).unwrap();
    produce(&t, "jobs", 0, 3);
    let mut a = t.subscribe_static(options("g", "jobs"), "svc-1").unwrap();
    let mut b = t.subscribe_static(options("g", "jobs"), "svc-2").unwrap();
    a.poll(SHORT).unwrap();
    poll_until(b.as_mut(), |s| s.assignment() == [1]);
    a.commit(&[(0, 2)]).unwrap();
    // a closes without leaving: its partition waits for it, b is not rebalanced.
    a.close().unwrap();
    assert!(!b.rebalance_pending());
    let mut again = t.subscribe_static(options("g", "jobs"), "svc-1").unwrap();
    assert!(
        !b.rebalance_pending(),
        "no rebalance for a static member coming back"
    );
    assert_eq!(b.assignment(), [1]);
    let read = poll_until(again.as_mut(), |s| s.assignment() == [0]);
    let read = read + again.poll(SHORT).unwrap().len();
    assert_eq!(read, 1, "it goes on from its commit");
    // The member it replaced is fenced.
    let mut old = t.subscribe_static(options("g", "jobs"), "svc-2").unwrap();
    let fenced = b.commit(&[(1, 0)]).unwrap_err();
    assert_eq!(
        fenced.broker_code(),
        Some(82),
        "FENCED_INSTANCE_ID: {fenced}"
    );
    assert_eq!(b.poll(SHORT).unwrap_err().broker_code(), Some(82));
    poll_until(old.as_mut(), |s| s.assignment() == [1]);
}

#[test]
fn a_member_that_gave_up_its_partitions_holds_and_commits_nothing_while_others_still_may() {
    let t = MemoryTransport::new();
    t.create_topic("jobs", 2).unwrap();
    let mut a = t.subscribe(options("g", "jobs")).unwrap();
    let mut b = t.subscribe(options("g", "jobs")).unwrap();
    a.poll(SHORT).unwrap();
    assert_eq!(a.take_restarted(), [1], "given up, not given back");
    poll_until(b.as_mut(), |s| s.assignment() == [1]);
    let _c = t.subscribe(options("g", "jobs")).unwrap();
    // a gives up (its poll ends before b rejoined): it holds nothing and commits nothing.
    a.poll(SHORT).unwrap();
    assert!(a.assignment().is_empty());
    assert_eq!(
        a.take_restarted(),
        [0],
        "what a held restarts from the commit"
    );
    a.commit(&[(0, 0)]).expect("nothing of its own to send");
    // b still owns its partition in the old generation: its commit is accepted.
    assert!(b.rebalance_pending());
    b.commit(&[(1, 0)]).unwrap();
}

#[test]
fn a_write_made_to_fail_after_storing_is_stored_and_reported_failed() {
    let t = MemoryTransport::new();
    t.fail_next_produces_after_storing(1, ErrorKind::Timeout);
    let record = OutgoingRecord {
        partition: 0,
        key: None,
        value: b"once".to_vec(),
        headers: Vec::new(),
    };
    let options = ProduceOptions {
        acks: Acks::All,
        compression: Compression::None,
        timeout: Duration::from_secs(1),
    };
    let mut session = t.connect_producer().unwrap();
    let first = session.produce("w", std::slice::from_ref(&record), &options);
    assert_eq!(first[0].as_ref().unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(t.records("w").len(), 1, "stored although reported failed");
    // A retry writes it a second time, as on a broker without idempotence.
    session.produce("w", &[record], &options)[0]
        .as_ref()
        .unwrap();
    assert_eq!(t.records("w").len(), 2);
}

#[test]
fn polls_made_to_fail_after_a_rejoin_fail_after_the_new_assignment_was_taken() {
    let t = MemoryTransport::new();
    t.create_topic("jobs", 2).unwrap();
    let mut a = t.subscribe(options("g", "jobs")).unwrap();
    t.fail_polls_after_rejoin(2);
    let mut b = t.subscribe(options("g", "jobs")).unwrap();
    assert_eq!(a.poll(SHORT).unwrap_err().kind(), ErrorKind::Connection);
    assert_eq!(
        a.assignment(),
        [0],
        "the new generation's partitions, already taken"
    );
    assert!(a.poll(SHORT).is_err());
    a.poll(SHORT).unwrap();
    poll_until(b.as_mut(), |s| s.assignment() == [1]);
}

#[test]
fn the_coordinator_checks_a_commit_as_kafka_does() {
    use super::group::{Group, GroupTimeouts};
    let timeouts = GroupTimeouts::default();
    let alive = std::sync::Arc::new(());
    let mut g = Group::default();
    g.join("a", None, std::sync::Arc::downgrade(&alive), 2, timeouts);
    assert_eq!(g.generation, 1);
    g.check_commit("a", 1).unwrap();
    let code = |r: crate::error::Result<()>| r.unwrap_err().broker_code();
    assert_eq!(code(g.check_commit("a", 0)), Some(22), "ILLEGAL_GENERATION");
    assert_eq!(
        code(g.check_commit("nobody", 1)),
        Some(25),
        "UNKNOWN_MEMBER_ID"
    );
    g.join("b", None, std::sync::Arc::downgrade(&alive), 2, timeouts);
    // a has not rejoined: its commit in the current generation is accepted; b, who
    // joined, waits for the new generation.
    g.check_commit("a", 1).unwrap();
    assert_eq!(
        code(g.check_commit("b", 1)),
        Some(27),
        "REBALANCE_IN_PROGRESS"
    );
    g.rejoin("a", 2, timeouts);
    assert_eq!(g.generation, 2);
    assert_eq!((g.assignment("a"), g.assignment("b")), (vec![0], vec![1]));
    assert_eq!(code(g.check_commit("a", 1)), Some(22));
}
