//! Accounts and their one current API key.
//!
//! The legacy key API keeps a single key per account: generating replaces it, and the replaced
//! key stops opening the data services at that instant. The operator's rotation logic stands or
//! falls on that, so this table keeps exactly one key per account and answers "is this key
//! current?" from nothing else.

use std::collections::HashMap;

use crate::random;

/// Every account the fake knows, by email.
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    by_email: HashMap<String, Account>,
    issued_keys: Vec<String>,
}

#[derive(Debug)]
struct Account {
    /// The stable id that tokens carry as `sub`.
    id: String,
    password: String,
    key: Option<String>,
}

/// Signup of an email that already has an account.
#[derive(Debug)]
pub(crate) struct AlreadyRegistered;

impl Accounts {
    /// Opens an account, as signup does.
    pub(crate) fn create(&mut self, email: &str, password: &str) -> Result<(), AlreadyRegistered> {
        if self.by_email.contains_key(email) {
            return Err(AlreadyRegistered);
        }

        let account = Account {
            id: random::alphanumeric(28),
            password: password.to_owned(),
            key: None,
        };
        self.by_email.insert(email.to_owned(), account);
        Ok(())
    }

    /// Replaces the password of an existing account; false if there is no such account.
    pub(crate) fn set_password(&mut self, email: &str, password: &str) -> bool {
        match self.by_email.get_mut(email) {
            Some(account) => {
                account.password = password.to_owned();
                true
            }
            None => false,
        }
    }

    /// The account id, if email and password match an account.
    pub(crate) fn login(&self, email: &str, password: &str) -> Option<&str> {
        let account = self.by_email.get(email)?;
        (account.password == password).then_some(account.id.as_str())
    }

    pub(crate) fn id_of(&self, email: &str) -> Option<&str> {
        self.by_email.get(email).map(|account| account.id.as_str())
    }

    /// Gives the account a fresh key, retiring the one it had; None if there is no such account.
    pub(crate) fn rotate_key(&mut self, account_id: &str) -> Option<String> {
        let account = self.by_email.values_mut().find(|a| a.id == account_id)?;
        let key = format!("tk_{}", random::alphanumeric(40));
        account.key = Some(key.clone());
        self.issued_keys.push(key.clone());
        Some(key)
    }

    /// The account's current key: outer None if there is no such account, inner None if it
    /// never generated one.
    pub(crate) fn key_of(&self, account_id: &str) -> Option<Option<&str>> {
        let account = self.by_email.values().find(|a| a.id == account_id)?;
        Some(account.key.as_deref())
    }

    pub(crate) fn key_of_email(&self, email: &str) -> Option<&str> {
        self.by_email.get(email)?.key.as_deref()
    }

    /// The account whose current key this is, if any.
    pub(crate) fn owner_of_key(&self, key: &str) -> Option<&str> {
        self.by_email
            .values()
            .find(|a| a.key.as_deref() == Some(key))
            .map(|a| a.id.as_str())
    }

    /// Every key ever generated, oldest first.
    pub(crate) fn issued_keys(&self) -> &[String] {
        &self.issued_keys
    }

    /// Email, account id and current key of every account, sorted by email.
    pub(crate) fn list(&self) -> Vec<(&str, &str, Option<&str>)> {
        let mut list: Vec<_> = self
            .by_email
            .iter()
            .map(|(email, a)| (email.as_str(), a.id.as_str(), a.key.as_deref()))
            .collect();
        list.sort();
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signup_twice_is_refused() {
        let mut accounts = Accounts::default();
        accounts.create("a@example.com", "pw").unwrap();
        assert!(accounts.create("a@example.com", "other").is_err());
        assert!(accounts.login("a@example.com", "pw").is_some());
    }

    #[test]
    fn login_needs_the_right_password() {
        let mut accounts = Accounts::default();
        accounts.create("a@example.com", "pw").unwrap();

        assert!(accounts.login("a@example.com", "wrong").is_none());
        assert!(accounts.login("b@example.com", "pw").is_none());

        assert!(accounts.set_password("a@example.com", "new"));
        assert!(accounts.login("a@example.com", "pw").is_none());
        assert!(accounts.login("a@example.com", "new").is_some());
        assert!(!accounts.set_password("b@example.com", "new"));
    }

    #[test]
    fn rotation_retires_the_old_key() {
        let mut accounts = Accounts::default();
        accounts.create("a@example.com", "pw").unwrap();
        let id = accounts.id_of("a@example.com").unwrap().to_owned();
        assert_eq!(accounts.key_of(&id), Some(None));

        let old = accounts.rotate_key(&id).unwrap();
        let new = accounts.rotate_key(&id).unwrap();

        assert_ne!(old, new);
        assert!(new.starts_with("tk_") && new.len() == 43);
        assert_eq!(accounts.key_of(&id), Some(Some(new.as_str())));
        assert_eq!(accounts.owner_of_key(&new), Some(id.as_str()));
        assert_eq!(accounts.owner_of_key(&old), None);
        assert_eq!(accounts.issued_keys(), [old, new]);
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let mut accounts = Accounts::default();
        accounts.create("a@example.com", "pw").unwrap();
        accounts.create("b@example.com", "pw").unwrap();

        let a = accounts.id_of("a@example.com").unwrap().to_owned();
        assert_eq!(accounts.login("a@example.com", "pw"), Some(a.as_str()));
        assert_ne!(Some(a.as_str()), accounts.id_of("b@example.com"));
    }
}
