//! Credentials that share a Terrakio account (same endpoint, same email), and what they know
//! together: the account's key fingerprint and its latest rotation.
//!
//! With the account API one account has one key, so a rotation by any of its credentials
//! changes the key of all of them. This index lets the others follow within seconds (each by
//! its own login: nothing here holds a password or key), serialises rotations per account, and
//! names the credentials that would rotate the same key on their own schedules.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;

use crate::credential::TerrakioCredential;

/// An account as the operator can tell it: the endpoint and the (case-folded) email.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountKey {
    pub endpoint: String,
    pub email: String,
}

impl AccountKey {
    pub fn new(endpoint: &url::Url, email: &str) -> Self {
        AccountKey {
            endpoint: endpoint.as_str().to_string(),
            email: email.to_lowercase(),
        }
    }
}

type Member = ObjectRef<TerrakioCredential>;

#[derive(Default)]
struct Account {
    /// Members, and whether each has a rotation policy.
    members: HashMap<Member, bool>,
    fingerprint: Option<String>,
    rotated_at: Option<Timestamp>,
    rotation: Arc<tokio::sync::Mutex<()>>,
}

/// What a member learns when it checks in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Shared {
    pub fingerprint: Option<String>,
    pub rotated_at: Option<Timestamp>,
    /// Other members that have a rotation policy.
    pub other_rotators: Vec<Member>,
}

// Limitation: the index lives in memory. After a restart it is rebuilt as credentials
// reconcile, so a rotation made just before a crash is followed by the account's other
// credentials only at their next refresh, and in that window a second policy on the account
// could rotate once more. Recording the account (the token's `sub`) in each credential's status
// would let the index be rebuilt from the cache at start.
#[derive(Default)]
pub struct Accounts {
    accounts: Mutex<HashMap<AccountKey, Account>>,
}

impl Accounts {
    /// Records that `member` logs in as `key` (leaving any account it used before) and returns
    /// what the account's members know.
    pub fn join(&self, key: &AccountKey, member: &Member, rotates: bool) -> Shared {
        let mut accounts = self.accounts.lock().expect("accounts lock");
        for (other_key, account) in accounts.iter_mut() {
            if other_key != key {
                account.members.remove(member);
            }
        }
        accounts.retain(|_, account| !account.members.is_empty());
        let account = accounts.entry(key.clone()).or_default();
        account.members.insert(member.clone(), rotates);
        let mut other_rotators: Vec<Member> = account
            .members
            .iter()
            .filter(|(m, rotates)| **rotates && *m != member)
            .map(|(m, _)| m.clone())
            .collect();
        other_rotators.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Shared {
            fingerprint: account.fingerprint.clone(),
            rotated_at: account.rotated_at,
            other_rotators,
        }
    }

    /// Forgets a deleted credential.
    pub fn leave(&self, member: &Member) {
        let mut accounts = self.accounts.lock().expect("accounts lock");
        for account in accounts.values_mut() {
            account.members.remove(member);
        }
        accounts.retain(|_, account| !account.members.is_empty());
    }

    /// The lock held while one member of the account rotates, so that two never rotate at once.
    pub fn rotation_lock(&self, key: &AccountKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut accounts = self.accounts.lock().expect("accounts lock");
        accounts.entry(key.clone()).or_default().rotation.clone()
    }

    pub fn rotated_at(&self, key: &AccountKey) -> Option<Timestamp> {
        let accounts = self.accounts.lock().expect("accounts lock");
        accounts.get(key).and_then(|account| account.rotated_at)
    }

    /// Records the key `seen` saw (and, after a rotation, when it happened). Returns the other
    /// members when the key is news to the account: they must read the new key back.
    pub fn saw_key(
        &self,
        key: &AccountKey,
        seen: &Member,
        fingerprint: &str,
        rotated_at: Option<Timestamp>,
    ) -> Vec<Member> {
        let mut accounts = self.accounts.lock().expect("accounts lock");
        let account = accounts.entry(key.clone()).or_default();
        if let Some(at) = rotated_at {
            account.rotated_at = Some(account.rotated_at.map_or(at, |prev| prev.max(at)));
        }
        let news = account
            .fingerprint
            .as_deref()
            .is_some_and(|known| known != fingerprint);
        account.fingerprint = Some(fingerprint.to_string());
        if !news && rotated_at.is_none() {
            return Vec::new();
        }
        account
            .members
            .keys()
            .filter(|m| *m != seen)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(ns: &str, name: &str) -> Member {
        ObjectRef::new(name).within(ns)
    }

    fn account(email: &str) -> AccountKey {
        AccountKey::new(&url::Url::parse("https://api.terrak.io").unwrap(), email)
    }

    #[test]
    fn members_follow_each_others_keys() {
        let accounts = Accounts::default();
        let (a, b, c) = (member("x", "a"), member("y", "b"), member("x", "c"));
        accounts.join(&account("geo@example.com"), &a, true);
        accounts.join(&account("GEO@example.com"), &b, false);
        accounts.join(&account("other@example.com"), &c, true);

        // The first key seen is not news; a different one is, for the other members only.
        assert!(
            accounts
                .saw_key(&account("geo@example.com"), &a, "fp1", None)
                .is_empty()
        );
        assert!(
            accounts
                .saw_key(&account("geo@example.com"), &b, "fp1", None)
                .is_empty()
        );
        assert_eq!(
            accounts.saw_key(&account("geo@example.com"), &b, "fp2", None),
            vec![a.clone()]
        );

        // A rotation wakes the others even when they already know the fingerprint.
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        assert_eq!(
            accounts.saw_key(&account("geo@example.com"), &a, "fp2", Some(at)),
            vec![b.clone()]
        );
        let shared = accounts.join(&account("geo@example.com"), &b, false);
        assert_eq!(shared.fingerprint.as_deref(), Some("fp2"));
        assert_eq!(shared.rotated_at, Some(at));
        assert_eq!(shared.other_rotators, vec![a.clone()]);
    }

    #[test]
    fn a_member_that_changes_account_leaves_the_old_one() {
        let accounts = Accounts::default();
        let (a, b) = (member("x", "a"), member("x", "b"));
        accounts.join(&account("one@example.com"), &a, true);
        accounts.join(&account("one@example.com"), &b, true);
        accounts.join(&account("two@example.com"), &a, true);
        let shared = accounts.join(&account("one@example.com"), &b, true);
        assert!(shared.other_rotators.is_empty());
        accounts.leave(&b);
        assert_eq!(
            accounts
                .join(&account("two@example.com"), &a, true)
                .other_rotators,
            vec![]
        );
    }
}
