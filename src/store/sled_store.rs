//! The embedded store: one sled tree per concern, multi-tree writes in transactions, and a
//! flush before any write returns (sled alone fsyncs only every 500 ms).

use super::{Family, ListFilter, NewUser, StateFilter, StoreError, User, UserChange, UserStore};
use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use std::path::Path;

const NEXT_ID: &[u8] = b"next_id";
/// Users by state, kept in the same transactions as the users, so counts and the admin
/// list's first pages never scan the whole tree.
const COUNT_ACTIVE: &[u8] = b"count_active";
const COUNT_INACTIVE: &[u8] = b"count_inactive";

fn state_key(is_active: bool) -> &'static [u8] {
    if is_active {
        COUNT_ACTIVE
    } else {
        COUNT_INACTIVE
    }
}

/// Adds `delta` to a counter inside a transaction.
fn bump(
    meta: &sled::transaction::TransactionalTree,
    key: &[u8],
    delta: i64,
) -> Result<(), sled::transaction::UnabortableTransactionError> {
    let current = meta.get(key)?.and_then(|v| decode_id(&v)).unwrap_or(0);
    let next = current.saturating_add_signed(delta);
    meta.insert(key, &id_key(next))?;
    Ok(())
}

pub struct SledStore {
    db: sled::Db,
    /// id (u64 big-endian) -> User JSON.
    users: sled::Tree,
    /// lower-case username -> id.
    usernames: sled::Tree,
    /// lower-case email -> id.
    emails: sled::Tree,
    /// family id -> Family JSON.
    families: sled::Tree,
    /// counters.
    meta: sled::Tree,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn decode_id(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

fn decode_user(bytes: &[u8]) -> Result<User, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Io(format!("corrupt user record: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(io)
}

fn abort<T>(e: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

fn tx_result<T>(r: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => io(e),
    })
}

impl SledStore {
    /// The unfiltered list without a scan: ids are assigned in order and rows are never
    /// removed (soft delete), so while no id was skipped (imports can skip), the user at
    /// position `offset` has id `offset + 1`; otherwise the start is found by skipping.
    fn list_all_by_id(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<User>), StoreError> {
        let count = self.count_users(&StateFilter::All)?;
        let next = self
            .meta
            .get(NEXT_ID)
            .map_err(io)?
            .and_then(|v| decode_id(&v))
            .unwrap_or(1);
        let dense = next.saturating_sub(1) == count as u64;
        let mut page = Vec::new();
        let items: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if dense {
            Box::new(self.users.range(id_key(offset as u64 + 1)..))
        } else {
            Box::new(self.users.iter().skip(offset))
        };
        for item in items.take(limit) {
            let (_, bytes) = item.map_err(io)?;
            page.push(decode_user(&bytes)?);
        }
        Ok((count, page))
    }

    /// Opens (or creates) the store in `dir`. Another process holding it is a clear error.
    pub fn open(dir: &Path, cache_capacity_bytes: u64) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_capacity_bytes)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref ioe) if ioe.to_string().contains("could not acquire lock") => {
                    StoreError::InUse(dir.display().to_string())
                }
                other => StoreError::Io(format!("cannot open store in {}: {other}", dir.display())),
            })?;
        let tree = |name: &str| db.open_tree(name).map_err(io);
        Ok(SledStore {
            users: tree("users")?,
            usernames: tree("usernames")?,
            emails: tree("emails")?,
            families: tree("families")?,
            meta: tree("meta")?,
            db,
        })
    }

    /// Waits until everything written so far is on disk; concurrent writers share one flush.
    async fn flush(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let flushed = self.db.flush_async().await.map(|_| ()).map_err(io);
        crate::metrics::STORE_FLUSH_SECONDS.observe(started.elapsed().as_secs_f64());
        flushed
    }

    /// Inserts `user` with its id under the indexes, in one transaction.
    fn insert_tx(&self, user: &User, allocate_id: bool) -> Result<User, StoreError> {
        let uname = user.username.to_lowercase();
        let email = user.email.to_lowercase();
        tx_result(
            (&self.users, &self.usernames, &self.emails, &self.meta).transaction(
                |(users, usernames, emails, meta)| {
                    if usernames.get(uname.as_bytes())?.is_some() {
                        return abort(StoreError::UsernameTaken);
                    }
                    if emails.get(email.as_bytes())?.is_some() {
                        return abort(StoreError::EmailTaken);
                    }
                    let next = meta.get(NEXT_ID)?.and_then(|v| decode_id(&v)).unwrap_or(1);
                    let mut user = user.clone();
                    if allocate_id {
                        user.id = next;
                    } else if users.get(id_key(user.id))?.is_some() {
                        return abort(StoreError::Io(format!("user id {} exists", user.id)));
                    }
                    meta.insert(NEXT_ID, &id_key(next.max(user.id + 1)))?;
                    let bytes = match encode(&user) {
                        Ok(b) => b,
                        Err(e) => return abort(e),
                    };
                    users.insert(&id_key(user.id), bytes)?;
                    usernames.insert(uname.as_bytes(), &id_key(user.id))?;
                    emails.insert(email.as_bytes(), &id_key(user.id))?;
                    bump(meta, state_key(user.is_active), 1)?;
                    Ok(user)
                },
            ),
        )
    }
}

#[async_trait]
impl UserStore for SledStore {
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let user = User {
            id: 0,
            username: new.username,
            email: new.email,
            first_name: new.first_name,
            last_name: new.last_name,
            password: new.password,
            is_active: true,
            is_staff: new.is_staff,
            date_joined: new.date_joined,
            last_login: None,
            deleted_at: None,
            token_version: 0,
        };
        let user = self.insert_tx(&user, true)?;
        self.flush().await?;
        Ok(user)
    }

    async fn insert_user(&self, user: User) -> Result<User, StoreError> {
        let user = self.insert_tx(&user, false)?;
        self.flush().await?;
        Ok(user)
    }

    async fn insert_users(
        &self,
        users: Vec<User>,
    ) -> Result<Vec<Result<User, StoreError>>, StoreError> {
        let results = users.iter().map(|u| self.insert_tx(u, false)).collect();
        self.flush().await?;
        Ok(results)
    }

    fn get_user(&self, id: u64) -> Result<Option<User>, StoreError> {
        match self.users.get(id_key(id)).map_err(io)? {
            Some(bytes) => Ok(Some(decode_user(&bytes)?)),
            None => Ok(None),
        }
    }

    fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let key = username.to_lowercase();
        match self.usernames.get(key.as_bytes()).map_err(io)? {
            Some(id) => match decode_id(&id) {
                Some(id) => self.get_user(id),
                None => Err(StoreError::Io("corrupt username index".into())),
            },
            None => Ok(None),
        }
    }

    fn email_owner(&self, email: &str) -> Result<Option<u64>, StoreError> {
        let key = email.to_lowercase();
        Ok(self
            .emails
            .get(key.as_bytes())
            .map_err(io)?
            .and_then(|v| decode_id(&v)))
    }

    async fn update_user(&self, id: u64, change: UserChange<'_>) -> Result<User, StoreError> {
        let updated = tx_result(
            (&self.users, &self.usernames, &self.emails, &self.meta).transaction(
                |(users, usernames, emails, meta)| {
                    let Some(bytes) = users.get(id_key(id))? else {
                        return abort(StoreError::NotFound);
                    };
                    let old = match decode_user(&bytes) {
                        Ok(u) => u,
                        Err(e) => return abort(e),
                    };
                    let mut new = old.clone();
                    change(&mut new);
                    new.id = id;
                    for (tree, before, after, taken) in [
                        (
                            usernames,
                            &old.username,
                            &new.username,
                            StoreError::UsernameTaken,
                        ),
                        (emails, &old.email, &new.email, StoreError::EmailTaken),
                    ] {
                        let (before, after) = (before.to_lowercase(), after.to_lowercase());
                        if before == after {
                            continue;
                        }
                        if let Some(owner) = tree.get(after.as_bytes())? {
                            if decode_id(&owner) != Some(id) {
                                return abort(taken);
                            }
                        }
                        tree.remove(before.as_bytes())?;
                        tree.insert(after.as_bytes(), &id_key(id))?;
                    }
                    let bytes = match encode(&new) {
                        Ok(b) => b,
                        Err(e) => return abort(e),
                    };
                    users.insert(&id_key(id), bytes)?;
                    if old.is_active != new.is_active {
                        bump(meta, state_key(new.is_active), 1)?;
                        bump(meta, state_key(old.is_active), -1)?;
                    }
                    Ok(new)
                },
            ),
        )?;
        self.flush().await?;
        Ok(updated)
    }

    fn count_users(&self, state: &StateFilter) -> Result<usize, StoreError> {
        let get = |key: &[u8]| -> Result<u64, StoreError> {
            Ok(self
                .meta
                .get(key)
                .map_err(io)?
                .and_then(|v| decode_id(&v))
                .unwrap_or(0))
        };
        let n = match state {
            StateFilter::Active => get(COUNT_ACTIVE)?,
            StateFilter::Inactive => get(COUNT_INACTIVE)?,
            StateFilter::All => get(COUNT_ACTIVE)? + get(COUNT_INACTIVE)?,
        };
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn list_users(
        &self,
        filter: &ListFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<User>), StoreError> {
        if filter.search.is_none() && filter.state == StateFilter::All {
            return self.list_all_by_id(offset, limit);
        }
        let mut count = 0;
        let mut page = Vec::new();
        for item in self.users.iter() {
            let (_, bytes) = item.map_err(io)?;
            let user = decode_user(&bytes)?;
            if !filter.matches(&user) {
                continue;
            }
            if count >= offset && page.len() < limit {
                page.push(user);
            }
            count += 1;
        }
        Ok((count, page))
    }

    fn get_family(&self, family: &str) -> Result<Option<Family>, StoreError> {
        match self.families.get(family.as_bytes()).map_err(io)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Io(format!("corrupt family record: {e}"))),
            None => Ok(None),
        }
    }

    async fn swap_family(
        &self,
        family: &str,
        expected: Option<&Family>,
        new: &Family,
    ) -> Result<bool, StoreError> {
        // Records are written only by this function, from the same serializer, so the bytes
        // of an equal record are equal.
        let old = expected.map(encode).transpose()?;
        let swapped = self
            .families
            .compare_and_swap(family.as_bytes(), old, Some(encode(new)?))
            .map_err(io)?
            .is_ok();
        if swapped {
            self.flush().await?;
        }
        Ok(swapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::block;

    fn new_user(name: &str) -> NewUser {
        NewUser {
            username: name.into(),
            email: format!("{name}@example.com"),
            first_name: String::new(),
            last_name: String::new(),
            password: "x".into(),
            is_staff: false,
            date_joined: 0,
        }
    }

    #[test]
    fn ids_increase_and_names_are_unique_case_insensitively() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        block(async {
            let a = store.create_user(new_user("alice")).await.expect("alice");
            let b = store.create_user(new_user("bob")).await.expect("bob");
            assert_eq!((a.id, b.id), (1, 2));
            assert_eq!(
                store.create_user(new_user("ALICE")).await,
                Err(StoreError::UsernameTaken)
            );
            let mut dup_email = new_user("carol");
            dup_email.email = "Bob@Example.com".into();
            assert_eq!(
                store.create_user(dup_email).await,
                Err(StoreError::EmailTaken)
            );
            assert_eq!(
                store
                    .find_by_username("Alice")
                    .expect("lookup")
                    .map(|u| u.id),
                Some(1)
            );
        });
    }

    #[test]
    fn update_moves_indexes_and_refuses_taken_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        block(async {
            store.create_user(new_user("alice")).await.expect("alice");
            store.create_user(new_user("bob")).await.expect("bob");
            let r = store.update_user(1, &|u| u.username = "Bob".into()).await;
            assert_eq!(r, Err(StoreError::UsernameTaken));
            let u = store
                .update_user(1, &|u| u.username = "alicia".into())
                .await
                .expect("rename");
            assert_eq!(u.username, "alicia");
            assert!(store.find_by_username("alice").expect("lookup").is_none());
            assert_eq!(
                store
                    .find_by_username("ALICIA")
                    .expect("lookup")
                    .map(|u| u.id),
                Some(1)
            );
            assert_eq!(
                store.update_user(99, &|_| {}).await,
                Err(StoreError::NotFound)
            );
        });
    }

    #[test]
    fn second_open_of_a_held_store_says_in_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _held = SledStore::open(dir.path(), 1 << 20).expect("open");
        let err = SledStore::open(dir.path(), 1 << 20)
            .err()
            .expect("second open fails");
        assert!(matches!(err, StoreError::InUse(_)), "{err:?}");
    }

    #[test]
    fn family_swap_is_compare_and_swap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        let f1 = Family {
            user_id: 1,
            current: "b".into(),
            parent: Some("a".into()),
            rotated_at: 1,
            revoked: false,
            expires_at: 10,
        };
        let mut f2 = f1.clone();
        f2.current = "c".into();
        block(async {
            assert!(store.swap_family("a", None, &f1).await.expect("first"));
            assert!(!store.swap_family("a", None, &f2).await.expect("stale"));
            assert!(store.swap_family("a", Some(&f1), &f2).await.expect("cas"));
            assert_eq!(store.get_family("a").expect("get"), Some(f2));
        });
    }

    #[test]
    fn counters_follow_state_and_dense_pages_skip_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        block(async {
            for i in 0..10 {
                store
                    .create_user(new_user(&format!("u{i}")))
                    .await
                    .expect("create");
            }
            store
                .update_user(4, &|u| u.is_active = false)
                .await
                .expect("deactivate");
            store
                .update_user(4, &|u| u.first_name = "x".into())
                .await
                .expect("touch");
            // An imported user with a gap in the ids: pages must still be right.
            let mut gap = store.get_user(1).expect("get").expect("user");
            gap.id = 20;
            gap.username = "imported".into();
            gap.email = "imported@example.com".into();
            store.insert_user(gap).await.expect("insert");
        });
        assert_eq!(store.count_users(&StateFilter::Active).expect("count"), 10);
        assert_eq!(store.count_users(&StateFilter::Inactive).expect("count"), 1);
        let (count, page) = store
            .list_users(&ListFilter::default(), 8, 5)
            .expect("page");
        assert_eq!(count, 11);
        assert_eq!(
            page.iter().map(|u| u.id).collect::<Vec<_>>(),
            vec![9, 10, 20]
        );
    }

    #[test]
    fn list_filters_and_pages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        block(async {
            for n in ["ann", "bob", "cat", "dan"] {
                store.create_user(new_user(n)).await.expect("create");
            }
            store
                .update_user(2, &|u| u.is_active = false)
                .await
                .expect("deactivate");
        });
        let all = ListFilter::default();
        let (count, page) = store.list_users(&all, 1, 2).expect("list");
        assert_eq!(count, 4);
        assert_eq!(page.iter().map(|u| u.id).collect::<Vec<_>>(), vec![2, 3]);
        let inactive = ListFilter {
            state: super::super::StateFilter::Inactive,
            search: None,
        };
        assert_eq!(store.list_users(&inactive, 0, 10).expect("list").0, 1);
        let search = ListFilter {
            state: Default::default(),
            search: Some("CA".into()),
        };
        let (n, users) = store.list_users(&search, 0, 10).expect("list");
        assert_eq!((n, users[0].username.as_str()), (1, "cat"));
    }
}
