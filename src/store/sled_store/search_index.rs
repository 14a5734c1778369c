//! sled's search index for the console's users list: per trigram, posting lists of user ids
//! in blocks (delta varints), appended in the user transactions, written whole by the bulk
//! paths, and read by `Postings` cursors that seek in id order.
//!
//! Keys in `user_index` (trigram = three chars of a folded text, as UTF-8; ids u64
//! big-endian):
//! - `t` trigram first-id: a block, its value the ids after the first as varint deltas
//!   (ascending; at most `BLOCK` ids). Blocks of a trigram hold disjoint ascending ranges:
//!   a new id only goes into the last block (or a new one after it) when it is greater
//!   than every id there;
//! - `h` trigram: the head, first id of the last block (8 bytes) then how many postings the
//!   trigram holds (8 bytes, strays included; an upper bound on its users), so a
//!   transaction finds the last block with plain gets (sled's transactions have no ranges);
//! - `x` trigram id: a stray, an id added out of order (a rename, an email change, an import
//!   whose ids go back), one key each.
//!
//! Postings are a superset: a trigram a user loses stays in its block (a stray is removed)
//! and every candidate is checked against its record (`UserQuery::matches`), so a search
//! still finds exactly its users; only index-only estimates may count a stale posting.

use super::{decode_id, id_key, io, StoreError};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use std::collections::{BTreeMap, BTreeSet};

const BLOCK_TAG: u8 = b't';
const HEAD_TAG: u8 = b'h';
const STRAY_TAG: u8 = b'x';

/// Ids per block: a transaction's append rewrites one block (up to ~3 bytes an id), and a
/// seek decodes one. (Small in unit tests, so that a few users fill several blocks.)
const BLOCK: usize = if cfg!(test) { 4 } else { 128 };

/// Strays a cursor holds in memory; past this it seeks them in the tree.
const STRAYS_IN_MEMORY: usize = 4_096;

/// The distinct trigrams (three chars each, as UTF-8) of `text`.
pub(super) fn trigrams_of(text: &str, into: &mut BTreeSet<Vec<u8>>) {
    let chars: Vec<char> = text.chars().collect();
    for w in chars.windows(3) {
        into.insert(w.iter().collect::<String>().into_bytes());
    }
}

fn key(tag: u8, trigram: &[u8], id: Option<u64>) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + trigram.len() + 8);
    k.push(tag);
    k.extend_from_slice(trigram);
    if let Some(id) = id {
        k.extend_from_slice(&id_key(id));
    }
    k
}

fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn corrupt() -> StoreError {
    StoreError::Io("corrupt users search index".into())
}

/// The ids of the block starting at `first` whose value is `deltas`.
fn decode_block(first: u64, deltas: &[u8]) -> Result<Vec<u64>, StoreError> {
    // At most one id per byte: one allocation.
    let mut ids = Vec::with_capacity(deltas.len() + 1);
    ids.push(first);
    let (mut at, mut shift, mut n) = (first, 0u32, 0u64);
    for &b in deltas {
        if shift > 63 {
            return Err(corrupt());
        }
        n |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            at = at.checked_add(n).ok_or_else(corrupt)?;
            ids.push(at);
            (shift, n) = (0, 0);
        } else {
            shift += 7;
        }
    }
    if shift != 0 {
        return Err(corrupt());
    }
    Ok(ids)
}

fn head_value(first: u64, count: u64) -> Vec<u8> {
    let mut v = id_key(first).to_vec();
    v.extend_from_slice(&id_key(count));
    v
}

/// A head's (first id of the last block, postings).
fn decode_head(v: &[u8]) -> Result<(u64, u64), StoreError> {
    match (
        v.get(..8).and_then(decode_id),
        v.get(8..).and_then(decode_id),
    ) {
        (Some(first), Some(count)) => Ok((first, count)),
        _ => Err(corrupt()),
    }
}

/// A trigram's last block as read: its first id, its ids, its encoded value.
struct Tail {
    first: u64,
    ids: Vec<u64>,
    value: Vec<u8>,
}

/// Adds sorted, distinct `ids` to `trigram`'s postings given its head (`None`: no postings
/// yet) and last block; returns the writes (key, value) in order and the new head.
fn plan_append(
    trigram: &[u8],
    head: Option<(u64, u64)>,
    tail: Option<Tail>,
    ids: &[u64],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut writes = Vec::new();
    let mut count = head.map_or(0, |(_, c)| c);
    let mut tail = tail;
    let mut touched = false;
    for &id in ids {
        let last = tail.as_ref().and_then(|t| t.ids.last().copied());
        match last {
            Some(last) if id == last => continue,
            Some(last) if id < last => {
                writes.push((key(STRAY_TAG, trigram, Some(id)), Vec::new()));
            }
            Some(last) if tail.as_ref().is_some_and(|t| t.ids.len() < BLOCK) => {
                if let Some(t) = tail.as_mut() {
                    push_varint(&mut t.value, id - last);
                    t.ids.push(id);
                }
                touched = true;
            }
            _ => {
                if let Some(t) = tail.take() {
                    if touched {
                        writes.push((key(BLOCK_TAG, trigram, Some(t.first)), t.value));
                    }
                }
                tail = Some(Tail {
                    first: id,
                    ids: vec![id],
                    value: Vec::new(),
                });
                touched = true;
            }
        }
        count += 1;
    }
    if let Some(t) = tail {
        if touched {
            writes.push((key(BLOCK_TAG, trigram, Some(t.first)), t.value));
        }
        if touched || head.map(|(_, c)| c) != Some(count) {
            writes.push((key(HEAD_TAG, trigram, None), head_value(t.first, count)));
        }
    }
    writes
}

type TxResult = Result<(), ConflictableTransactionError<StoreError>>;

fn abort(e: StoreError) -> TxResult {
    Err(ConflictableTransactionError::Abort(e))
}

/// Adds `ids` (sorted, distinct) to `trigram`'s postings inside a transaction: the last
/// block is found through the head, appended to (or followed by new blocks); ids not past
/// its last become strays.
pub(super) fn append_tx(index: &TransactionalTree, trigram: &[u8], ids: &[u64]) -> TxResult {
    let head = match index.get(key(HEAD_TAG, trigram, None))? {
        Some(v) => match decode_head(&v) {
            Ok(h) => Some(h),
            Err(e) => return abort(e),
        },
        None => None,
    };
    let tail = match head {
        Some((first, _)) => {
            // The head and its block are written together: a head without one is corrupt
            // (an empty value is a block that holds only its first id).
            let Some(value) = index.get(key(BLOCK_TAG, trigram, Some(first)))? else {
                return abort(corrupt());
            };
            let value = value.to_vec();
            match decode_block(first, &value) {
                Ok(ids) => Some(Tail { first, ids, value }),
                Err(e) => return abort(e),
            }
        }
        None => None,
    };
    for (k, v) in plan_append(trigram, head, tail, ids) {
        index.insert(k, v)?;
    }
    Ok(())
}

/// Removes user `id`'s posting of `trigram` when it is a stray (a posting in a block stays:
/// see the module's header).
pub(super) fn forget_tx(index: &TransactionalTree, trigram: &[u8], id: u64) -> TxResult {
    index.remove(key(STRAY_TAG, trigram, Some(id)))?;
    Ok(())
}

/// The postings of many users, gathered in memory by the bulk paths (import, the loader,
/// the one-time build) and written a trigram at a time: whole blocks, one head each.
#[derive(Default)]
pub(super) struct Gathered {
    by_trigram: BTreeMap<Vec<u8>, Vec<u64>>,
}

impl Gathered {
    pub(super) fn add(&mut self, trigrams: &BTreeSet<Vec<u8>>, id: u64) {
        for t in trigrams {
            self.by_trigram.entry(t.clone()).or_default().push(id);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_trigram.is_empty()
    }

    /// Writes every gathered posting in one transaction (so appends of concurrent user
    /// writes are neither lost nor lose these).
    pub(super) fn write(self, index: &sled::Tree) -> Result<(), StoreError> {
        let mut by_trigram = self.by_trigram;
        for ids in by_trigram.values_mut() {
            ids.sort_unstable();
            ids.dedup();
        }
        index
            .transaction(|tx| {
                for (trigram, ids) in &by_trigram {
                    append_tx(tx, trigram, ids)?;
                }
                Ok(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Abort(e) => e,
                sled::transaction::TransactionError::Storage(e) => io(e),
            })
    }
}

/// How many postings `trigram` holds (strays and stale ones included): an upper bound on
/// the users holding it.
pub(super) fn postings(index: &sled::Tree, trigram: &[u8]) -> Result<u64, StoreError> {
    match index.get(key(HEAD_TAG, trigram, None)).map_err(io)? {
        Some(v) => Ok(decode_head(&v)?.1),
        None => Ok(0),
    }
}

/// A cursor over one trigram's postings: `seek` gives the first id at or past a target in
/// the walk's direction, keeping the block it last decoded.
pub(super) struct Postings<'a> {
    tree: &'a sled::Tree,
    trigram: Vec<u8>,
    desc: bool,
    /// The block last decoded.
    block: Vec<u64>,
    /// The strays when few (sorted), else `None`: sought in the tree.
    strays: Option<Vec<u64>>,
}

impl<'a> Postings<'a> {
    pub(super) fn new(
        tree: &'a sled::Tree,
        trigram: Vec<u8>,
        desc: bool,
    ) -> Result<Self, StoreError> {
        let mut strays = Vec::new();
        let prefix = key(STRAY_TAG, &trigram, None);
        let mut many = false;
        for item in tree.scan_prefix(&prefix) {
            let (k, _) = item.map_err(io)?;
            if strays.len() >= STRAYS_IN_MEMORY {
                many = true;
                break;
            }
            strays.push(trailing(&k)?);
        }
        Ok(Postings {
            tree,
            trigram,
            desc,
            block: Vec::new(),
            strays: (!many).then_some(strays),
        })
    }

    fn load(
        &mut self,
        item: Option<sled::Result<(sled::IVec, sled::IVec)>>,
    ) -> Result<(), StoreError> {
        self.block.clear();
        if let Some(item) = item {
            let (k, v) = item.map_err(io)?;
            self.block = decode_block(trailing(&k)?, &v)?;
        }
        Ok(())
    }

    /// The first posting at or past `target` (descending: at or before).
    pub(super) fn seek(&mut self, target: u64) -> Result<Option<u64>, StoreError> {
        let in_block = match (self.block.first(), self.block.last()) {
            (Some(&lo), Some(&hi)) => lo <= target && target <= hi,
            _ => false,
        };
        // Keys are built only when the tree is read (most seeks stay in the block).
        let at = |trigram: &[u8]| key(BLOCK_TAG, trigram, Some(target));
        if !in_block && !self.next_block_serves(target)? {
            // The block whose range holds `target`: the last one starting at or before it.
            let prefix = key(BLOCK_TAG, &self.trigram, None);
            let item = self.tree.range(prefix..=at(&self.trigram)).next_back();
            self.load(item)?;
        }
        // A block is ascending: a binary search.
        let mut found = if self.desc {
            let past = self.block.partition_point(|id| *id <= target);
            past.checked_sub(1).map(|i| self.block[i])
        } else {
            let from = self.block.partition_point(|id| *id < target);
            self.block.get(from).copied()
        };
        if found.is_none() && !self.desc {
            // Past this block: the next block's first id.
            let (at, end) = (
                at(&self.trigram),
                key(BLOCK_TAG, &self.trigram, Some(u64::MAX)),
            );
            let item = self.tree.range(at..=end).next();
            self.load(item)?;
            found = self.block.first().copied();
        }
        let stray = self.stray(target)?;
        Ok(match (found, stray) {
            (Some(a), Some(b)) => Some(if self.desc { a.max(b) } else { a.min(b) }),
            (a, b) => a.or(b),
        })
    }

    /// Walking up past the block in hand (a walk in id order leaves each block for the
    /// next): loads the next block, and whether it serves `target` (holds it, or starts
    /// past it, or there is none). One forward read instead of the backward one of a seek
    /// from anywhere, which costs sled several times more.
    fn next_block_serves(&mut self, target: u64) -> Result<bool, StoreError> {
        let Some(&hi) = self.block.last() else {
            return Ok(false);
        };
        if self.desc || target <= hi {
            return Ok(false);
        }
        // `hi < target`, so `hi + 1` does not overflow.
        let from = key(BLOCK_TAG, &self.trigram, Some(hi + 1));
        let end = key(BLOCK_TAG, &self.trigram, Some(u64::MAX));
        let item = self.tree.range(from..=end).next();
        self.load(item)?;
        Ok(self.block.last().is_none_or(|&last| target <= last))
    }

    fn stray(&self, target: u64) -> Result<Option<u64>, StoreError> {
        if let Some(strays) = &self.strays {
            let at = strays.partition_point(|id| *id < target);
            return Ok(if self.desc {
                match strays.get(at) {
                    Some(&id) if id == target => Some(id),
                    _ => at.checked_sub(1).map(|i| strays[i]),
                }
            } else {
                strays.get(at).copied()
            });
        }
        let prefix = key(STRAY_TAG, &self.trigram, None);
        let at = key(STRAY_TAG, &self.trigram, Some(target));
        let item = if self.desc {
            self.tree.range(prefix..=at).next_back()
        } else {
            let end = key(STRAY_TAG, &self.trigram, Some(u64::MAX));
            self.tree.range(at..=end).next()
        };
        item.map(|i| trailing(&i.map_err(io)?.0)).transpose()
    }
}

/// The last 8 bytes of a key: the id.
fn trailing(key: &[u8]) -> Result<u64, StoreError> {
    key.len()
        .checked_sub(8)
        .and_then(|at| decode_id(&key[at..]))
        .ok_or_else(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(tree: &sled::Tree, trigram: &[u8], desc: bool) -> Vec<u64> {
        let mut p = Postings::new(tree, trigram.to_vec(), desc).expect("cursor");
        let mut out = Vec::new();
        let mut target = if desc { u64::MAX } else { 0 };
        while let Some(id) = p.seek(target).expect("seek") {
            out.push(id);
            target = match if desc {
                id.checked_sub(1)
            } else {
                id.checked_add(1)
            } {
                Some(t) => t,
                None => break,
            };
        }
        out
    }

    #[test]
    fn appends_strays_and_bulk_writes_read_back_in_order() {
        let db = sled::Config::new().temporary(true).open().expect("db");
        let tree = db.open_tree("t").expect("tree");
        let append = |ids: &[u64]| {
            tree.transaction(|tx| append_tx(tx, b"abc", ids))
                .expect("append")
        };
        // One at a time (the user transactions), in order, repeated, and out of order.
        for id in [3, 5, 9, 9, 10, 11, 20, 21, 40] {
            append(&[id]);
        }
        append(&[4]);
        append(&[1]);
        let mut want = vec![1, 3, 4, 5, 9, 10, 11, 20, 21, 40];
        assert_eq!(all(&tree, b"abc", false), want);
        // Bulk: a batch past the last block and one reaching back.
        let mut g = Gathered::default();
        let one: BTreeSet<Vec<u8>> = [b"abc".to_vec()].into();
        for id in [50, 41, 60, 61, 62, 63, 64, 65, 7] {
            g.add(&one, id);
        }
        g.write(&tree).expect("bulk");
        want.extend([41, 50, 60, 61, 62, 63, 64, 65]);
        want.push(7);
        want.sort_unstable();
        assert_eq!(all(&tree, b"abc", false), want);
        want.reverse();
        assert_eq!(all(&tree, b"abc", true), want);
        // Seeks land inside and between blocks, both ways; forward ones to the next block,
        // past it, into a gap and past the end.
        let mut p = Postings::new(&tree, b"abc".to_vec(), false).expect("cursor");
        let blocks: Vec<Vec<u64>> = tree
            .scan_prefix([BLOCK_TAG])
            .map(|item| {
                let (k, v) = item.expect("block");
                decode_block(trailing(&k).expect("id"), &v).expect("decoded")
            })
            .collect();
        assert!(blocks.len() >= 3, "{blocks:?}");
        for block in &blocks {
            for &id in block {
                assert_eq!(p.seek(id).expect("seek"), Some(id), "{blocks:?}");
            }
        }
        // Every target from the start of each block, walking up from each block's first id:
        // the answer is the first posting at or past it (strays included).
        let mut up = want.clone();
        up.sort_unstable();
        let first_at = |t: u64| up.iter().copied().find(|&id| id >= t);
        let end = up[up.len() - 1] + 2;
        for block in &blocks {
            for jump in 1..=end {
                let mut p = Postings::new(&tree, b"abc".to_vec(), false).expect("cursor");
                assert_eq!(p.seek(block[0]).expect("seek"), first_at(block[0]));
                let t = block[0] + jump;
                assert_eq!(p.seek(t).expect("seek"), first_at(t), "{block:?} then {t}");
            }
        }
        let mut p = Postings::new(&tree, b"abc".to_vec(), false).expect("cursor");
        assert_eq!(p.seek(22).expect("seek"), Some(40));
        assert_eq!(p.seek(6).expect("seek"), Some(7));
        assert_eq!(p.seek(66).expect("seek"), None);
        let mut p = Postings::new(&tree, b"abc".to_vec(), true).expect("cursor");
        assert_eq!(p.seek(22).expect("seek"), Some(21));
        assert_eq!(p.seek(0).expect("seek"), None);
        assert_eq!(postings(&tree, b"abc").expect("count"), 19);
        assert!(all(&tree, b"abd", false).is_empty());
        // A stray forgotten is gone; a block's posting stays (the record decides).
        tree.transaction(|tx| forget_tx(tx, b"abc", 7))
            .expect("forget");
        assert!(!all(&tree, b"abc", false).contains(&7));
    }

    #[test]
    fn blocks_hold_deltas_of_any_size() {
        let ids = [5u64, 6, 200, 70_000, 1 << 40];
        let mut value = Vec::new();
        for w in ids.windows(2) {
            push_varint(&mut value, w[1] - w[0]);
        }
        assert_eq!(decode_block(5, &value).ok(), Some(ids.to_vec()));
        assert!(decode_block(5, &[0x80]).is_err());
    }
}
