//! PostgreSQL decides reservations and Stripe events in batches, as SQLite's writer does: the decisions of one kind
//! that queue in this sidecar while one transaction is in flight go into the next one, which locks every row they
//! need in few statements (in one order), plans them in arrival order against what it read, writes them set-based
//! and commits once; each caller is answered after that commit. On a hot size this turns one transaction per
//! decision, each holding the size's row lock across its round trips, into one per batch. A batch that fails
//! (another sidecar took one of its keys, a deadlock, anything) is rolled back whole and its decisions run again
//! one transaction each, in the same order, so a failure stays its own request's.

use tokio::sync::{mpsc, oneshot};

use super::PostgresStore;
use super::decisions::{self, Pending};
use crate::store::StoreError;
use crate::store::plan::{Decision, Outcome, Request};

/// At most this many decisions share one transaction: bounds how long the first waits for the last.
const MAX_BATCH: usize = 128;
/// Decisions waiting for the next batch; the HTTP layer's concurrency limit keeps the queue well below this.
const QUEUE: usize = 4096;

/// A decision waiting for its batch, and where its answer goes.
#[derive(Debug)]
pub(super) struct Queued {
    request: Request,
    pending: Pending,
    answer: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// Whether a failed batch's decisions run again one after another in arrival order (reservations: the first to ask
/// gets the last unit), or all at once, each in its own transaction (Stripe events: one whose rows another
/// transaction holds must not hold up the others, as it did not before events were batched).
fn again_in_order(decision: &Decision) -> bool {
    matches!(decision, Decision::Reserve { .. })
}

fn batching_stopped() -> StoreError {
    StoreError::Inconsistent("the ledger's batching has stopped (the store was closed)".to_owned())
}

/// Starts the task that decides one kind of decision in batches with `store` (a store without queues of its own);
/// it stops once every sender of the returned queue is dropped.
pub(super) fn start(store: PostgresStore) -> mpsc::Sender<Queued> {
    let (queue, mut queued) = mpsc::channel::<Queued>(QUEUE);
    tokio::spawn(async move {
        while let Some(first) = queued.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queued.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            // A caller that stopped waiting (its request timed out and was answered 408) is not decided: nobody
            // would know of the units it held.
            batch.retain(|queued| !queued.answer.is_closed());
            if !batch.is_empty() {
                decide_batch(&store, batch).await;
            }
        }
    });
    queue
}

/// Queues a decision for the next batch of its kind and waits for its answer.
pub(super) async fn decide_in_next_batch(
    queue: &mpsc::Sender<Queued>,
    request: Request,
    pending: Pending,
) -> Result<Outcome, StoreError> {
    let (answer, answered) = oneshot::channel();
    queue.send(Queued { request, pending, answer }).await.map_err(|_| batching_stopped())?;
    answered.await.map_err(|_| batching_stopped())?
}

/// Decides a batch in one transaction, or, if that fails, each of its decisions alone (see [`again_in_order`]).
async fn decide_batch(store: &PostgresStore, batch: Vec<Queued>) {
    let kind = batch.first().map_or("decision", |queued| queued.request.decision.kind());
    if batch.len() > 1 {
        match decide_together(store, &batch).await {
            Ok(outcomes) => {
                for (queued, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = queued.answer.send(Ok(outcome));
                }
                return;
            }
            Err(error) => {
                if let Some(cause) = unreachable_database(&error) {
                    // Nothing any one decision did: running each again alone would wait as long again, each.
                    tracing::warn!(error = %error, decisions = batch.len(), kind = kind,
                        "a batch could not reach the database");
                    for queued in batch {
                        let _ = queued.answer.send(Err(StoreError::Busy(cause.clone())));
                    }
                    return;
                }
                tracing::debug!(error = %error, decisions = batch.len(), kind = kind,
                    "a batch failed as a whole; its decisions run again one by one");
            }
        }
    }
    for queued in batch {
        if queued.answer.is_closed() {
            continue;
        }
        if again_in_order(&queued.request.decision) {
            let outcome = store.decide_alone(&queued.request, queued.pending).await;
            let _ = queued.answer.send(outcome);
        } else {
            let store = store.clone();
            // Not waited for: the next batch need not wait on a row another transaction holds either.
            tokio::spawn(async move {
                let outcome = store.decide_alone(&queued.request, queued.pending).await;
                let _ = queued.answer.send(outcome);
            });
        }
    }
}

/// The cause of a failure to reach the database at all (no connection free within the pool's timeout, the pool
/// closed, the connection lost): transient, and the same for every decision of the batch.
fn unreachable_database(error: &StoreError) -> Option<std::sync::Arc<dyn std::error::Error + Send + Sync>> {
    let StoreError::Database(cause) = error else {
        return None;
    };
    let unreachable = matches!(
        cause.downcast_ref::<sqlx::Error>(),
        Some(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
    );
    unreachable.then(|| cause.clone())
}

/// Every decision of the batch in one transaction, committed; nothing if it fails.
async fn decide_together(store: &PostgresStore, batch: &[Queued]) -> Result<Vec<Outcome>, StoreError> {
    let requests: Vec<Request> = batch.iter().map(|queued| queued.request.clone()).collect();
    let pending = batch.first().map(|queued| queued.pending.clone()).ok_or_else(batching_stopped)?;
    store.counters.writes.fetch_add(requests.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let mut transaction = store.pool.begin().await?;
    let outcomes = decisions::decide_all(&mut transaction, pending, &requests).await?;
    transaction.commit().await?;
    store.counters.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(outcomes)
}
