//! Taking one record (or a batch of them) a step further, and putting it where its next
//! step says: ended, in the outbox, in the waiting room, or held in the backlog.
//!
//! ```text
//!  record ─ key waits in the waiting room? ─▶ queued behind it (order per key kept)
//!         ─ prepare (decode, retry entry, dedupe, handler lookup)
//!             ├─ a step already (skip, duplicate, dead letter, not due) ─▶ apply
//!             ├─ ready, unbatched handler ─ one attempt ──────────────────▶ apply
//!             └─ ready, batch handler: gather the next ready records of the same
//!                partition and type (up to max_batch, distinct ids) ─ one batch call
//!                for their first attempt ─────────────────────────────────▶ apply each
//!                (a record after a failed one of its key: queued behind it, again later)
//!  apply: ended ─▶ tracker.end │ divert ─▶ outbox │ again ─▶ waiting room
//!         not due ─▶ set aside in the backlog until then (its partition goes on; held
//!                    when max_waiting_retries are set aside already)
//! ```

use std::collections::VecDeque;
use std::time::Instant;

use super::process::{Prepared, Ready, Step};
use super::runner::TopicLoop;
use super::waiting::Waiting;
use crate::transport::ConsumedRecord;

impl TopicLoop {
    /// Takes `record` (just out of the backlog) one step.
    pub(super) fn take(&mut self, record: ConsumedRecord) {
        let record = if self.waiting.is_blocked(&record) {
            match self.waiting.follow(record) {
                Ok(()) => return,
                Err(record) => record,
            }
        } else {
            record
        };
        match self.flow.prepare(&record) {
            Prepared::Done(step) => self.apply(record, step),
            Prepared::Ready(ready) => match ready.batch_limit() {
                None => {
                    let step = self.flow.attempt(ready, &record);
                    self.apply(record, step);
                }
                Some(max) => self.batch(ready, record, max),
            },
        }
    }

    /// Gathers a batch starting with `first` from the same partition and runs its first
    /// attempt in one call.
    fn batch(&mut self, first: Box<Ready>, record: ConsumedRecord, max: usize) {
        let partition = record.partition;
        let mut batch: Vec<(Box<Ready>, ConsumedRecord)> = vec![(first, record)];
        while batch.len() < max && !self.shared.stop.is_stopped() {
            let waiting = &self.waiting;
            let Some(next) = self
                .backlog
                .next_of_if(partition, Instant::now(), |r| !waiting.is_blocked(r))
            else {
                break;
            };
            match self.flow.prepare(&next) {
                Prepared::Ready(r)
                    if batch[0].0.batches_with(&r) && batch.iter().all(|(b, _)| !b.same_id(&r)) =>
                {
                    batch.push((r, next));
                }
                // Another type, or a second copy of a message in the batch: prepared again
                // (nothing was done for it yet) once the batch ended, so a copy is then
                // seen as a duplicate.
                Prepared::Ready(_) => {
                    self.backlog.push_front(vec![next]);
                    break;
                }
                Prepared::Done(step) => self.apply(next, step),
            }
        }
        for (record, step) in self.flow.attempt_batch(batch) {
            self.apply(record, step);
        }
    }

    /// The next attempt of a message whose wait is over.
    pub(super) fn retry_waiting(&mut self, w: Waiting<Box<Ready>>) {
        let Waiting {
            item,
            record,
            followers,
        } = w;
        match self.flow.attempt(item, &record) {
            Step::Again(ready, due) => self.waiting.insert(
                due,
                Waiting {
                    item: ready,
                    record,
                    followers,
                },
            ),
            step => {
                self.apply(record, step);
                self.release(followers);
            }
        }
    }

    fn release(&mut self, followers: VecDeque<ConsumedRecord>) {
        if !followers.is_empty() {
            self.backlog.push_front(followers.into());
        }
    }

    /// Puts `record` where `step` says.
    pub(super) fn apply(&mut self, record: ConsumedRecord, step: Step) {
        match step {
            Step::Ended(ending) => {
                log::trace!(
                    "{}/{}@{} ended: {ending:?}",
                    record.topic,
                    record.partition,
                    record.offset
                );
                self.end(record.partition, record.offset);
            }
            Step::Divert(divert) => {
                self.outbox.push(divert);
                if self.shared.config.consumer.commit_interval.is_zero() {
                    self.flush_and_commit();
                }
            }
            Step::Again(ready, due) => self.waiting.insert(
                due,
                Waiting {
                    item: ready,
                    record,
                    followers: VecDeque::new(),
                },
            ),
            Step::Behind => {
                // Queued behind the record of its key applied just before it.
                if let Err(record) = self.waiting.follow(record) {
                    self.backlog.push_front(vec![record]);
                }
            }
            Step::NotDue(until) => {
                log::debug!(
                    "retry entry {}/{}@{} not due yet; set aside until then",
                    record.topic,
                    record.partition,
                    record.offset
                );
                let limit = self.shared.config.consumer.max_waiting_retries;
                if let Err(record) = self.backlog.defer(record, until, limit) {
                    // Too many set aside: this one holds its partition.
                    self.backlog.hold(record, until);
                }
            }
        }
    }

    fn end(&mut self, partition: i32, offset: i64) {
        self.tracker.end(partition, offset);
        if self.shared.config.consumer.commit_interval.is_zero() {
            self.commit();
        }
    }
}
