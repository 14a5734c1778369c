//! Users and refresh-token families behind the `UserStore` trait, so a networked backend
//! (PostgreSQL) can replace the embedded sled one. Every write is durable when it returns.

mod sled_store;

pub use sled_store::SledStore;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// PHC string (argon2id), or an imported Django hash; never returned or logged.
    pub password: String,
    pub is_active: bool,
    pub is_staff: bool,
    /// Unix seconds.
    pub date_joined: u64,
    pub last_login: Option<u64>,
    pub deleted_at: Option<u64>,
    /// Bumped on soft delete and password change: every token carrying an older one is dead.
    pub token_version: u64,
}

/// What registration supplies; the store assigns the id.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub password: String,
    pub is_staff: bool,
    pub date_joined: u64,
}

/// One login's chain of refresh tokens. The root token's jti names the family; a family
/// without a record is a root that was never rotated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub user_id: u64,
    /// jti of the only refresh token of the family that may be used.
    pub current: String,
    /// jti of the token `current` was rotated from, replayable within the grace period.
    pub parent: Option<String>,
    /// Unix seconds of the last rotation.
    pub rotated_at: u64,
    pub revoked: bool,
    /// When the newest token expires; the record is useless after it.
    pub expires_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StateFilter {
    #[default]
    All,
    Active,
    Inactive,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: StateFilter,
    /// Case-insensitive substring of username or email.
    pub search: Option<String>,
}

impl ListFilter {
    pub fn matches(&self, u: &User) -> bool {
        let state_ok = match self.state {
            StateFilter::All => true,
            StateFilter::Active => u.is_active,
            StateFilter::Inactive => !u.is_active,
        };
        state_ok
            && self.search.as_ref().is_none_or(|s| {
                let s = s.to_lowercase();
                u.username.to_lowercase().contains(&s) || u.email.to_lowercase().contains(&s)
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("username taken")]
    UsernameTaken,
    #[error("email taken")]
    EmailTaken,
    #[error("no such user")]
    NotFound,
    #[error("the data directory {0} is in use by another gatehouse process; stop it first (sled allows one process per store)")]
    InUse(String),
    #[error("store error: {0}")]
    Io(String),
}

/// A change to one user, decided by the caller, applied atomically with the indexes.
pub type UserChange<'a> = &'a (dyn Fn(&mut User) + Sync);

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError>;
    /// Creates a user with a given id (import); later ids continue after the highest.
    async fn insert_user(&self, user: User) -> Result<User, StoreError>;
    /// Many `insert_user`s, each its own transaction, made durable by one flush at the end
    /// (bulk import and benchmark loading).
    async fn insert_users(
        &self,
        users: Vec<User>,
    ) -> Result<Vec<Result<User, StoreError>>, StoreError>;
    fn get_user(&self, id: u64) -> Result<Option<User>, StoreError>;
    /// Case-insensitive.
    fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Case-insensitive; the id that holds the address.
    fn email_owner(&self, email: &str) -> Result<Option<u64>, StoreError>;
    /// Applies `change`, keeping the username and email indexes in step; fails with
    /// `UsernameTaken`/`EmailTaken` if the new name belongs to someone else.
    async fn update_user(&self, id: u64, change: UserChange<'_>) -> Result<User, StoreError>;
    /// Users in a state, without a scan.
    fn count_users(&self, state: &StateFilter) -> Result<usize, StoreError>;
    /// Users matching `filter` in id order: the total count and the page `[offset, offset+limit)`.
    fn list_users(
        &self,
        filter: &ListFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<User>), StoreError>;
    fn get_family(&self, family: &str) -> Result<Option<Family>, StoreError>;
    /// Compare-and-swap of a family record: `Ok(false)` when `expected` is no longer current.
    async fn swap_family(
        &self,
        family: &str,
        expected: Option<&Family>,
        new: &Family,
    ) -> Result<bool, StoreError>;
}
