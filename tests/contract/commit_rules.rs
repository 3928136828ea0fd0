//! Promise: commits follow Kafka's rules on every transport. A member the group moved on
//! without (it did not rejoin within the rebalance timeout) has its commit refused, with
//! Kafka's code, and cannot move the group's offset back; a member that commits when told a
//! rebalance is pending (before it gives up its partitions) has that commit kept, and the
//! partition's next owner starts from it.

use std::time::{Duration, Instant};

use kafka_sync::transport::Subscription;

use crate::env::{message, Env, WAIT};

/// Kafka's UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION and REBALANCE_IN_PROGRESS.
const REFUSED: [i16; 3] = [25, 22, 27];

/// Polls `sub` until it returned `count` records in all.
fn read(sub: &mut dyn Subscription, count: usize) -> usize {
    let deadline = Instant::now() + WAIT;
    let mut got = 0;
    while got < count && Instant::now() < deadline {
        got += sub.poll(Duration::from_millis(250)).expect("poll").len();
    }
    got
}

fn a_stale_members_commit_is_refused_and_moves_no_offset_back(env: &mut Env) {
    let topic = env.topic("stale-commit", 1);
    env.send(&topic, &(0..5).map(message).collect::<Vec<_>>());
    let group = env.config.group_id.clone();
    let mut a = env.subscribe(&group, &topic);
    assert_eq!(read(a.as_mut(), 5), 5);
    a.commit(&[(0, 2)]).expect("A commits in its generation");

    // B joins; A never polls again, so the rebalance goes on without it once the rebalance
    // timeout passes.
    let mut b = env.subscribe(&group, &topic);
    let deadline = Instant::now() + WAIT;
    while b.assignment() != [0] {
        assert!(Instant::now() < deadline, "B never got the partition");
        b.poll(Duration::from_millis(250)).expect("B polls");
    }
    b.commit(&[(0, 4)])
        .expect("B commits in the new generation");

    let refused = a
        .commit(&[(0, 1)])
        .expect_err("the stale member's commit is refused");
    assert!(
        refused.broker_code().is_some_and(|c| REFUSED.contains(&c)),
        "refused with Kafka's code: {refused} ({:?})",
        refused.broker_code()
    );
    assert_eq!(
        env.offsets(&group, &topic)[&0].1,
        Some(4),
        "the stale commit moved nothing back"
    );
    let _ = a.close();
    let _ = b.close();
}

fn a_commit_made_while_a_rebalance_is_pending_is_where_the_next_owner_starts(env: &mut Env) {
    let topic = env.topic("pending-commit", 1);
    env.send(&topic, &(0..5).map(message).collect::<Vec<_>>());
    let group = env.config.group_id.clone();
    let mut a = env.subscribe(&group, &topic);
    assert_eq!(read(a.as_mut(), 5), 5);

    // B polls on a thread of its own (on Kafka its join waits for A to rejoin).
    let mut b = env.subscribe(&group, &topic);
    let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
    let b_reader = std::thread::spawn(move || {
        let mut got = 0;
        while stopped.try_recv().is_err() {
            got += b.poll(Duration::from_millis(100)).expect("B polls").len();
        }
        let owns = b.assignment();
        let _ = b.close();
        (got, owns)
    });
    let deadline = Instant::now() + WAIT;
    while !a.rebalance_pending() {
        assert!(
            Instant::now() < deadline,
            "A was never told of the rebalance"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    a.commit(&[(0, 5)])
        .expect("a commit before giving up the partitions is accepted");
    // A rejoins at its next polls; whoever gets the partition starts at 5: nothing again.
    let mut again = 0;
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        again += a.poll(Duration::from_millis(100)).expect("A polls").len();
    }
    stop.send(()).unwrap();
    let (b_got, b_owns) = b_reader.join().expect("B's thread");
    let a_owns = a.assignment();
    assert_eq!(
        (a_owns.len() + b_owns.len(), again + b_got),
        (1, 0),
        "one owner (A {a_owns:?}, B {b_owns:?}) and nothing read again"
    );
    assert_eq!(env.offsets(&group, &topic)[&0].1, Some(5));
    let _ = a.close();
}

contract! {
    a_stale_members_commit_is_refused_and_moves_no_offset_back =>
        super::a_stale_members_commit_is_refused_and_moves_no_offset_back,
    a_commit_made_while_a_rebalance_is_pending_is_where_the_next_owner_starts =>
        super::a_commit_made_while_a_rebalance_is_pending_is_where_the_next_owner_starts,
}
