//! Promise: the README's outcome table ("What happens to each consumed message"), row by
//! row, the same on both transports: every record ends exactly one way and the group's
//! offsets pass it only once it ended.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_sync::domain::{DeadLetterKind, HandlerError, KafkaMessage, MessageType};
use uuid::Uuid;

use crate::env::{message, n_of, retries, wait_for, Env};

/// Whether `group` committed every record of `topic`.
fn all_committed(env: &mut Env, group: &str, topic: &str) -> bool {
    env.offsets(group, topic)
        .values()
        .all(|(hw, committed)| committed.unwrap_or(0) == *hw)
}

/// Rows: `Ok` (handled, committed); `Permanent` (dead letter `permanent`); `Retriable`
/// every attempt with the retry topic off (dead letter `handler`); a panic every attempt
/// (dead letter `panic`); malformed JSON (dead letter `decode`); no handler for the type
/// (dead letter `unknown_type`); an id handled already (skipped as a duplicate).
fn each_row_of_the_outcome_table_ends_its_record_one_way(env: &mut Env) {
    let topic = env.topic("outcomes", 2);
    let mut config = env.config.clone();
    config.consumer.retry_topic_enabled = false;
    config.consumer.retry = retries(2, Duration::from_millis(20));
    let calls: Arc<Mutex<BTreeMap<usize, usize>>> = Arc::default();
    let consumer = env.consumer(config.clone());
    let seen = calls.clone();
    consumer.register_handler("test", move |m: &KafkaMessage| {
        let n = n_of(m);
        *seen.lock().unwrap().entry(n).or_default() += 1;
        match n {
            1 => Err(HandlerError::permanent("row: permanent")),
            2 => Err(HandlerError::retriable("row: retriable every attempt")),
            3 => panic!("row: a panic every attempt"),
            _ => Ok(()),
        }
    });
    let unknown =
        KafkaMessage::from_json(MessageType::new("nobody-handles"), serde_json::json!({}));
    let mut input: Vec<KafkaMessage> = (0..4).map(message).collect();
    input.push(unknown.clone());
    input.push(input[0].clone()); // the same id again: a duplicate
    env.send(&topic, &input);
    env.send_raw(&topic, 0, b"{ not json");
    consumer.consume([topic.as_str()]).expect("consumes");
    let group = config.group_id.clone();
    wait_for("every record ended and committed", || {
        all_committed(env, &group, &topic)
    });
    let duplicates: u64 = consumer.metrics().iter().map(|m| m.duplicates).sum();
    consumer.close(Duration::from_secs(20)).expect("closes");

    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls.get(&0),
        Some(&1),
        "handled once, its copy skipped: {calls:?}"
    );
    assert_eq!(duplicates, 1);
    assert_eq!(calls.get(&1), Some(&1), "a permanent error is not retried");
    assert_eq!(calls.get(&2), Some(&2), "retried in place, then given up");
    assert_eq!(
        calls.get(&3),
        Some(&2),
        "a panic is retried like a retriable error"
    );
    let mut kinds: BTreeMap<Option<Uuid>, Vec<DeadLetterKind>> = BTreeMap::new();
    for d in env.dead_letters(&config) {
        kinds.entry(d.message_id).or_default().push(d.kind);
    }
    let id = |n: usize| Some(input[n].id);
    assert_eq!(kinds.remove(&id(1)), Some(vec![DeadLetterKind::Permanent]));
    assert_eq!(kinds.remove(&id(2)), Some(vec![DeadLetterKind::Handler]));
    assert_eq!(kinds.remove(&id(3)), Some(vec![DeadLetterKind::Panic]));
    assert_eq!(
        kinds.remove(&Some(unknown.id)),
        Some(vec![DeadLetterKind::UnknownType])
    );
    assert_eq!(kinds.remove(&None), Some(vec![DeadLetterKind::Decode]));
    assert!(kinds.is_empty(), "nothing else dead-lettered: {kinds:?}");
}

/// Row: `Retriable` every attempt with the retry topic on (the default): parked on the
/// retry topic once its in-place attempts are used up, its offset committed.
fn a_message_failing_in_place_is_parked_on_the_retry_topic(env: &mut Env) {
    let topic = env.topic("parked", 1);
    let mut config = env.config.clone();
    config.consumer.retry_topic_enabled = true;
    config.consumer.retry = retries(2, Duration::from_millis(20));
    let attempts = Arc::new(AtomicUsize::new(0));
    let consumer = env.consumer(config.clone());
    let seen = attempts.clone();
    consumer.register_handler("test", move |_: &KafkaMessage| {
        seen.fetch_add(1, Ordering::SeqCst);
        Err(HandlerError::retriable("fails every attempt"))
    });
    let m = message(7);
    env.send(&topic, std::slice::from_ref(&m));
    consumer.consume([topic.as_str()]).expect("consumes");
    let group = config.group_id.clone();
    wait_for("the message parked and committed", || {
        all_committed(env, &group, &topic)
    });
    consumer.close(Duration::from_secs(20)).expect("closes");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(env.parked_ids(&config), vec![m.id]);
    assert!(env.dead_letters(&config).is_empty());
}

contract! {
    each_row_of_the_outcome_table_ends_its_record_one_way =>
        super::each_row_of_the_outcome_table_ends_its_record_one_way,
    a_message_failing_in_place_is_parked_on_the_retry_topic =>
        super::a_message_failing_in_place_is_parked_on_the_retry_topic,
}
