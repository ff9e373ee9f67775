//! Writes that must stay correct with several writers: bulk inserts of new keys, "insert
//! unless the key exists" (an `insert_one`, keeping the original's field order), upserts by
//! a unique key (runs and config, which the original upserts too), and the conditional user
//! writes of node registration and deletion.

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mongodb::error::ErrorKind;
use mongodb::Collection;

use super::{backend, is_duplicate_key, MongoStore, DUPLICATE_KEY};
use crate::store::StoreResult;

/// Documents per command of a bulk insert ([`MongoStore::insert_many_new`]).
pub(super) const BULK_CHUNK: usize = 1_000;

impl MongoStore {
    /// `insert_many`, unordered, of the documents whose `key` is not stored yet (nor repeated
    /// earlier in `docs`); returns how many were inserted. Where the collection's unique index
    /// is enforced, the index refuses a stored key (E11000, counted as skipped). Where it is
    /// not (a legacy database, or a MongoDB-wire server: the collection is guarded, see
    /// `indexes`), the stored keys are looked up first. Only there: nx-27017 answers a `$in`
    /// by reading the whole collection (6.6 s for 1 000 keys among 500 000 runs), and it
    /// answers one command at a time, so such a look-up per chunk made a bulk load quadratic
    /// and held the driver's heartbeat back for seconds.
    ///
    /// Sent [`BULK_CHUNK`] documents at a time, for the same reason: behind one long command
    /// the heartbeat waits, and past the connect timeout the driver takes the server for gone
    /// and interrupts the command ("interrupted due to server monitor timeout", a CI run
    /// loading 10 000 runs per call on a loaded machine).
    pub(super) async fn insert_many_new(
        &self,
        coll: &Collection<Document>,
        key: &str,
        docs: Vec<Document>,
    ) -> StoreResult<u64> {
        let look_up = self.guarded.contains(coll.name());
        let mut taken = std::collections::HashSet::new();
        let mut inserted = 0;
        let mut docs = docs.into_iter().peekable();
        while docs.peek().is_some() {
            let chunk: Vec<Document> = docs.by_ref().take(BULK_CHUNK).collect();
            inserted += Self::insert_chunk_new(coll, key, chunk, &mut taken, look_up).await?;
        }
        Ok(inserted)
    }

    /// One command's worth of [`Self::insert_many_new`]; `taken` holds the keys seen so far,
    /// `look_up` whether the stored keys are read first.
    async fn insert_chunk_new(
        coll: &Collection<Document>,
        key: &str,
        docs: Vec<Document>,
        taken: &mut std::collections::HashSet<String>,
        look_up: bool,
    ) -> StoreResult<u64> {
        // Both callers' keys are strings (ids as the codec writes them).
        let keys: Vec<&str> = docs.iter().filter_map(|d| d.get_str(key).ok()).collect();
        if keys.is_empty() {
            return Ok(0);
        }
        if look_up {
            let stored: Vec<Document> = coll
                .find(doc! { key: { "$in": keys } })
                .projection(doc! { key: 1, "_id": 0 })
                .await
                .map_err(backend)?
                .try_collect()
                .await
                .map_err(backend)?;
            taken.extend(
                stored
                    .iter()
                    .filter_map(|d| d.get_str(key).ok().map(str::to_string)),
            );
        }
        let fresh: Vec<Document> = docs
            .into_iter()
            .filter(|d| d.get_str(key).is_ok_and(|k| taken.insert(k.to_string())))
            .collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        let total = fresh.len() as u64;
        match coll.insert_many(fresh).ordered(false).await {
            Ok(res) => Ok(res.inserted_ids.len() as u64),
            Err(e) => match &*e.kind {
                ErrorKind::InsertMany(failure)
                    if failure.write_concern_error.is_none()
                        && failure
                            .write_errors
                            .as_ref()
                            .is_some_and(|errs| errs.iter().all(|w| w.code == DUPLICATE_KEY)) =>
                {
                    let dups = failure.write_errors.as_ref().map_or(0, Vec::len) as u64;
                    Ok(total.saturating_sub(dups))
                }
                _ => Err(backend(e)),
            },
        }
    }

    /// Inserts `document` unless a document matches `key`; the `_id` of the inserted
    /// document, `None` if the key was taken. One `insert_one`, like the original, so the
    /// stored document keeps the field order the codec gives it (an upsert's `$setOnInsert`
    /// is applied field by field in name order on MongoDB 5.0 and later). The collection's
    /// unique index on the key refuses a taken key (E11000, also when a concurrent writer won
    /// the race). Where that index is missing or not enforced (see `indexes`), the key is
    /// leased and looked up first, since the insert alone could then store it twice.
    pub(super) async fn insert_if_absent(
        &self,
        coll: &Collection<Document>,
        key: Document,
        document: Document,
    ) -> StoreResult<Option<Bson>> {
        if !self.guarded.contains(coll.name()) {
            return insert_new(coll, document).await;
        }
        let held = self.leases.acquire(&[guard_key(coll.name(), &key)]).await?;
        let res = match coll.find_one(key).await {
            Ok(Some(_)) => Ok(None),
            Ok(None) => insert_new(coll, document).await,
            Err(e) => Err(backend(e)),
        };
        held.release().await?;
        res
    }

    /// `update_one(key, update)` with upsert, where the key is unique: a concurrent upsert of
    /// the same key that inserted first makes ours fail with E11000 (servers before 4.2 and
    /// some MongoDB-wire servers do not retry it themselves), so retry it as the update it
    /// has become. Guarded by a lease like [`Self::insert_if_absent`] where the unique index
    /// is missing.
    pub(super) async fn upsert(
        &self,
        coll: &Collection<Document>,
        key: Document,
        update: UpsertWith,
    ) -> StoreResult<()> {
        let held = match self.guarded.contains(coll.name()) {
            true => Some(self.leases.acquire(&[guard_key(coll.name(), &key)]).await?),
            false => None,
        };
        let mut res = Ok(());
        for attempt in 0..3 {
            let r = match &update {
                UpsertWith::Set(set) => coll
                    .update_one(key.clone(), doc! { "$set": set.clone() })
                    .upsert(true)
                    .await
                    .map(|_| ()),
                UpsertWith::Replace(doc) => coll
                    .replace_one(key.clone(), doc.clone())
                    .upsert(true)
                    .await
                    .map(|_| ()),
            };
            res = match r {
                Ok(()) => Ok(()),
                Err(e) if is_duplicate_key(&e) && attempt < 2 => continue,
                Err(e) => Err(backend(e)),
            };
            break;
        }
        if let Some(held) = held {
            held.release().await?;
        }
        res
    }
}

/// `insert_one`; `None` on a duplicate key. Never retried by us: a repeated insert whose
/// first attempt was applied would report its own key as taken (the driver's retryable
/// writes repeat it safely, deduplicated by the server).
async fn insert_new(coll: &Collection<Document>, document: Document) -> StoreResult<Option<Bson>> {
    match coll.insert_one(document).await {
        Ok(res) => Ok(Some(res.inserted_id)),
        Err(e) if is_duplicate_key(&e) => Ok(None),
        Err(e) => Err(backend(e)),
    }
}

/// What [`MongoStore::upsert`] writes.
pub(super) enum UpsertWith {
    /// `$set` of these fields.
    Set(Document),
    /// The whole document.
    Replace(Document),
}

/// Lease key guarding inserts of one key of one collection.
fn guard_key(collection: &str, key: &Document) -> String {
    format!("{collection}:{key}")
}
