//! Accounts: isolated subject spaces. Every client belongs to exactly one account; a message
//! published in an account reaches only that account's subscriptions (imports and exports
//! cross accounts on purpose, see `imports`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use foldhash::fast::RandomState;
use parking_lot::RwLock;

use super::imports::ImportRoute;
use super::mappings::{Mapped, SubjectMappings};
use crate::router::Sublist;

/// Name of the account clients join when no account is configured (nats-server's `$G`).
pub const GLOBAL_ACCOUNT: &str = "$G";

/// One account.
pub struct Account {
    pub name: Arc<str>,
    /// Subscriptions of this account's clients and internal subscribers.
    pub sublist: Sublist,
    connections: AtomicUsize,
    /// `max_connections` of the account block; 0 is unlimited.
    max_connections: AtomicUsize,
    /// This account's imports, for what asks where a subject leads (JetStream's external
    /// sources); the messages themselves cross by the imports' subscriptions.
    pub(crate) imports: RwLock<Vec<ImportRoute>>,
    /// Subject mappings of what the account's clients publish, set once at startup.
    mappings: OnceLock<SubjectMappings>,
}

impl Account {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Account {
            name: name.into(),
            sublist: Sublist::new(),
            connections: AtomicUsize::new(0),
            max_connections: AtomicUsize::new(0),
            imports: RwLock::default(),
            mappings: OnceLock::new(),
        })
    }

    /// Installs the account's subject mappings (once; a second call is ignored).
    pub fn set_mappings(&self, mappings: SubjectMappings) {
        if !mappings.is_empty() {
            let _ = self.mappings.set(mappings);
        }
    }

    /// The account's subject mappings, if it has any.
    pub fn mappings(&self) -> Option<&SubjectMappings> {
        self.mappings.get()
    }

    /// Where a message a client of this account publishes to `subject` goes.
    pub fn map_subject(&self, subject: &str) -> Mapped {
        match self.mappings.get() {
            Some(mappings) => mappings.map(subject),
            None => Mapped::Unchanged,
        }
    }

    pub fn num_connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Sets the account's connection limit (0: unlimited).
    pub fn set_max_connections(&self, max: usize) {
        self.max_connections.store(max, Ordering::Relaxed);
    }

    /// Counts a new connection unless the account is at its limit.
    pub(crate) fn try_connection_opened(&self) -> bool {
        let max = self.max_connections.load(Ordering::Relaxed);
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (max == 0 || n < max).then_some(n + 1))
            .is_ok()
    }

    pub(crate) fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Account({})", self.name)
    }
}

/// Every account of the server.
pub struct Accounts {
    global: Arc<Account>,
    by_name: RwLock<HashMap<Arc<str>, Arc<Account>, RandomState>>,
}

impl Default for Accounts {
    fn default() -> Self {
        let global = Account::new(GLOBAL_ACCOUNT);
        let mut by_name = HashMap::default();
        by_name.insert(global.name.clone(), global.clone());
        Accounts { global, by_name: RwLock::new(by_name) }
    }
}

impl Accounts {
    /// The default account.
    pub fn global(&self) -> &Arc<Account> {
        &self.global
    }

    pub fn get(&self, name: &str) -> Option<Arc<Account>> {
        self.by_name.read().get(name).cloned()
    }

    /// Returns the named account, creating it if needed.
    pub fn get_or_create(&self, name: &str) -> Arc<Account> {
        if let Some(a) = self.get(name) {
            return a;
        }
        let mut map = self.by_name.write();
        map.entry(name.into()).or_insert_with(|| Account::new(name)).clone()
    }

    pub fn all(&self) -> Vec<Arc<Account>> {
        let mut all: Vec<_> = self.by_name.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Subscriptions over all accounts.
    pub fn total_subscriptions(&self) -> u64 {
        self.by_name.read().values().map(|a| a.sublist.count()).sum()
    }
}
