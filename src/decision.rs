//! What to do for one credential, decided from what was observed. Pure: no I/O, no clock.
//!
//! The reconciler gathers the observation (the credential, its target Secret, what it last
//! synced, the time), asks [`plan`] whether Terrakio must be asked at all, and after asking
//! asks [`write()`] whether the Secret must change. Every rule is a row in the tests below.

use std::time::Duration;

use jiff::Timestamp;

/// Why a new key is generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The schedule's rotation due at this time.
    Scheduled { due: Timestamp },
    /// The terrak.io/rotate annotation was set to this new value.
    Requested { value: String },
}

/// What is known about the target Secret before anything is done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// No Secret of that name.
    Absent,
    /// A Secret of that name that this credential does not control.
    Foreign,
    /// The credential's own Secret.
    Owned {
        /// Fingerprint of the value under the target key, `None` when the key is missing.
        key_fingerprint: Option<String>,
        /// Labels, annotations and owner reference are as the spec wants them.
        metadata_current: bool,
    },
}

/// Everything [`plan`] looks at.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    /// Whether the Ready condition is currently True.
    pub ready: bool,
    /// The fingerprint status recorded for the key last written.
    pub recorded_fingerprint: Option<&'a str>,
    pub last_sync: Option<Timestamp>,
    pub target: &'a TargetState,
    /// The login Secret differs from the one last used successfully (or none is remembered,
    /// as after a restart).
    pub login_changed: bool,
    pub refresh_interval: Duration,
    pub now: Timestamp,
    /// `spec.suspend`.
    pub suspended: bool,
    /// `spec.target.overwrite`: a foreign Secret may be taken over.
    pub overwrite: bool,
    /// A rotation started earlier and not recorded as done (a crash in between).
    pub pending_rotation: bool,
    /// The terrak.io/rotate annotation, and the value last handled.
    pub rotate_request: Option<&'a str>,
    pub last_rotate_request: Option<&'a str>,
    /// When the schedule wants the next rotation (`None` without a rotation policy).
    pub rotation_due: Option<Timestamp>,
    /// What that due time counts from: the last rotation, or the credential's creation.
    pub rotation_base: Option<Timestamp>,
    /// The latest rotation of this credential's account, by any credential.
    pub account_rotated_at: Option<Timestamp>,
    /// The fingerprint of the account's key as last seen by any credential of the account.
    pub account_fingerprint: Option<&'a str>,
}

/// Why Terrakio is asked for the current key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncReason {
    FirstSync,
    SpecChanged,
    NotReady,
    LoginChanged,
    TargetMissing,
    TargetDrifted,
    RefreshDue,
    /// Another credential of the account saw a new key.
    AccountKeyChanged,
    /// The schedule's due rotation was already done for the account by another credential.
    RotatedByAnother,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// `spec.suspend`: no call, no write.
    Suspended,
    /// The Secret belongs to someone else: leave it alone and say so.
    Conflict,
    /// Finish a rotation that was started before a crash: read the key back first and generate
    /// only if the old key is still current.
    ResumeRotation,
    /// Generate a new key and deliver it.
    Rotate(Trigger),
    /// Ask Terrakio for the current key (generating one only if the account has none), then
    /// see what [`write()`] says.
    Sync(SyncReason),
    /// Nothing to do until the next refresh.
    UpToDate { requeue_after: Duration },
}

pub fn plan(seen: &Observation<'_>) -> Plan {
    if seen.suspended {
        return Plan::Suspended;
    }
    if matches!(seen.target, TargetState::Foreign) && !seen.overwrite {
        return Plan::Conflict;
    }
    if seen.pending_rotation {
        return Plan::ResumeRotation;
    }
    // Limitation: the schedule counts from the credential's creation, so a credential whose
    // first sync comes after its first due time (a login that failed for longer than one
    // period) rotates right after adopting the key, as a catch-up. Counting from the first
    // sync would need that time in status.
    let never_synced = seen.recorded_fingerprint.is_none() || seen.last_sync.is_none();
    if never_synced {
        // A credential first adopts the account's key; rotations start from there.
        return Plan::Sync(SyncReason::FirstSync);
    }
    if let Some(value) = seen.rotate_request
        && seen.last_rotate_request != Some(value)
    {
        return Plan::Rotate(Trigger::Requested {
            value: value.to_string(),
        });
    }
    if let Some(due) = seen.rotation_due
        && due <= seen.now
    {
        // One key, one rotation: if another credential of the account replaced the key since
        // this one's schedule started counting, that rotation counts for this one too.
        return if rotated_by_another(seen.account_rotated_at, seen.rotation_base) {
            Plan::Sync(SyncReason::RotatedByAnother)
        } else {
            Plan::Rotate(Trigger::Scheduled { due })
        };
    }

    let reason = match seen.target {
        _ if seen.generation != seen.observed_generation => Some(SyncReason::SpecChanged),
        _ if !seen.ready => Some(SyncReason::NotReady),
        TargetState::Foreign => Some(SyncReason::TargetDrifted),
        TargetState::Absent => Some(SyncReason::TargetMissing),
        TargetState::Owned {
            key_fingerprint,
            metadata_current,
        } => {
            if key_fingerprint.as_deref() != seen.recorded_fingerprint || !metadata_current {
                Some(SyncReason::TargetDrifted)
            } else if seen
                .account_fingerprint
                .is_some_and(|fp| Some(fp) != seen.recorded_fingerprint)
            {
                Some(SyncReason::AccountKeyChanged)
            } else if seen.login_changed {
                Some(SyncReason::LoginChanged)
            } else {
                None
            }
        }
    };
    if let Some(reason) = reason {
        return Plan::Sync(reason);
    }

    let until_refresh = seen.last_sync.map(|last| {
        let elapsed = seen.now.duration_since(last);
        let elapsed = Duration::try_from(elapsed).unwrap_or_default();
        seen.refresh_interval.saturating_sub(elapsed)
    });
    let until_rotation = seen
        .rotation_due
        .map(|due| Duration::try_from(due.duration_since(seen.now)).unwrap_or_default());
    match until_refresh {
        Some(remaining) if !remaining.is_zero() => Plan::UpToDate {
            requeue_after: until_rotation.map_or(remaining, |r| r.min(remaining)),
        },
        _ => Plan::Sync(SyncReason::RefreshDue),
    }
}

/// Whether the account's key was replaced after `base` (this credential's last rotation, or its
/// creation), by another credential of the account.
pub fn rotated_by_another(account_rotated_at: Option<Timestamp>, base: Option<Timestamp>) -> bool {
    match (account_rotated_at, base) {
        (Some(rotated), Some(base)) => rotated > base,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// What happened to the Secret once the current key is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// First write of this credential's Secret.
    Create,
    /// The Secret was deleted or edited and is put back as it was.
    Restore,
    /// The key changed at Terrakio, or the Secret's labels, annotations or owner differ from
    /// what the spec asks for.
    Update,
    /// A Secret the credential did not control is taken over (`spec.target.overwrite`).
    Adopt,
}

/// Whether the Secret must be written to hold the key with fingerprint `current`.
pub fn write(target: &TargetState, recorded: Option<&str>, current: &str) -> Option<Write> {
    match target {
        // Reached only with spec.target.overwrite: the Secret is taken over.
        TargetState::Foreign => Some(Write::Adopt),
        TargetState::Absent if recorded.is_none() => Some(Write::Create),
        TargetState::Absent => Some(Write::Restore),
        TargetState::Owned {
            key_fingerprint,
            metadata_current,
        } => {
            let holds_current = key_fingerprint.as_deref() == Some(current);
            match (holds_current, *metadata_current) {
                (true, true) => None,
                _ if recorded.is_none() => Some(Write::Create),
                // It holds something other than what was last written: someone edited it.
                _ if key_fingerprint.as_deref() != recorded => Some(Write::Restore),
                _ => Some(Write::Update),
            }
        }
    }
}

/// Whether the key workloads read changed with this write, so that they must restart: the
/// operator had delivered another key before, or an adopted Secret held another value. A first
/// write changes nothing a workload could have read.
pub fn key_changed(
    write: Option<Write>,
    recorded: Option<&str>,
    previous_value: Option<&str>,
    current: &str,
) -> bool {
    match write {
        None => false,
        Some(Write::Adopt) => previous_value != Some(current),
        Some(_) => recorded.is_some_and(|delivered| delivered != current),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn owned(fingerprint: Option<&str>, metadata_current: bool) -> TargetState {
        TargetState::Owned {
            key_fingerprint: fingerprint.map(String::from),
            metadata_current,
        }
    }

    /// A credential synced at t=0 whose Secret holds key "A", observed at t=60.
    fn synced<'a>(target: &'a TargetState) -> Observation<'a> {
        Observation {
            generation: Some(1),
            observed_generation: Some(1),
            ready: true,
            recorded_fingerprint: Some("A"),
            last_sync: Some(at(0)),
            target,
            login_changed: false,
            refresh_interval: HOUR,
            now: at(60),
            suspended: false,
            overwrite: false,
            pending_rotation: false,
            rotate_request: None,
            last_rotate_request: None,
            rotation_due: None,
            rotation_base: Some(at(-3600)),
            account_rotated_at: None,
            account_fingerprint: None,
        }
    }

    #[test]
    fn plan_table() {
        let in_place = owned(Some("A"), true);
        let edited = owned(Some("B"), true);
        let key_removed = owned(None, true);
        let relabelled = owned(Some("A"), false);
        let absent = TargetState::Absent;
        let foreign = TargetState::Foreign;

        let cases: Vec<(&str, Observation<'_>, Plan)> = vec![
            (
                "in sync: wait for the refresh",
                synced(&in_place),
                Plan::UpToDate {
                    requeue_after: HOUR - Duration::from_secs(60),
                },
            ),
            (
                "never synced",
                Observation {
                    recorded_fingerprint: None,
                    last_sync: None,
                    ..synced(&absent)
                },
                Plan::Sync(SyncReason::FirstSync),
            ),
            (
                "a foreign Secret is never touched, even before the first sync",
                Observation {
                    recorded_fingerprint: None,
                    ..synced(&foreign)
                },
                Plan::Conflict,
            ),
            (
                "spec edited",
                Observation {
                    generation: Some(2),
                    ..synced(&in_place)
                },
                Plan::Sync(SyncReason::SpecChanged),
            ),
            (
                "last attempt failed",
                Observation {
                    ready: false,
                    ..synced(&in_place)
                },
                Plan::Sync(SyncReason::NotReady),
            ),
            (
                "Secret deleted",
                synced(&absent),
                Plan::Sync(SyncReason::TargetMissing),
            ),
            (
                "Secret edited",
                synced(&edited),
                Plan::Sync(SyncReason::TargetDrifted),
            ),
            (
                "key removed from the Secret",
                synced(&key_removed),
                Plan::Sync(SyncReason::TargetDrifted),
            ),
            (
                "labels removed from the Secret",
                synced(&relabelled),
                Plan::Sync(SyncReason::TargetDrifted),
            ),
            (
                "login Secret changed",
                Observation {
                    login_changed: true,
                    ..synced(&in_place)
                },
                Plan::Sync(SyncReason::LoginChanged),
            ),
            (
                "refresh due exactly now",
                Observation {
                    now: at(3600),
                    ..synced(&in_place)
                },
                Plan::Sync(SyncReason::RefreshDue),
            ),
            (
                "refresh overdue",
                Observation {
                    now: at(7200),
                    ..synced(&in_place)
                },
                Plan::Sync(SyncReason::RefreshDue),
            ),
            (
                "clock behind the last sync: wait a full interval, never spin",
                Observation {
                    now: at(-30),
                    ..synced(&in_place)
                },
                Plan::UpToDate {
                    requeue_after: HOUR,
                },
            ),
        ];
        for (name, seen, expected) in cases {
            assert_eq!(plan(&seen), expected, "{name}");
        }
    }

    #[test]
    fn key_changed_table() {
        let cases = [
            ("nothing written", None, Some("A"), Some("A"), "B", false),
            ("first write", Some(Write::Create), None, None, "A", false),
            (
                "restored with the same key",
                Some(Write::Restore),
                Some("A"),
                None,
                "A",
                false,
            ),
            (
                "rotated",
                Some(Write::Update),
                Some("A"),
                Some("A"),
                "B",
                true,
            ),
            (
                "labels only",
                Some(Write::Update),
                Some("A"),
                Some("A"),
                "A",
                false,
            ),
            (
                "restored with a newer key",
                Some(Write::Restore),
                Some("A"),
                None,
                "B",
                true,
            ),
            (
                "adopted a hand-copied key",
                Some(Write::Adopt),
                None,
                Some("X"),
                "A",
                true,
            ),
            (
                "adopted the right key",
                Some(Write::Adopt),
                None,
                Some("A"),
                "A",
                false,
            ),
        ];
        for (name, write, recorded, previous, current, expected) in cases {
            assert_eq!(
                key_changed(write, recorded, previous, current),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn write_table() {
        let cases = [
            (
                "first write",
                TargetState::Absent,
                None,
                "A",
                Some(Write::Create),
            ),
            (
                "deleted Secret",
                TargetState::Absent,
                Some("A"),
                "A",
                Some(Write::Restore),
            ),
            ("in place", owned(Some("A"), true), Some("A"), "A", None),
            (
                "edited value",
                owned(Some("B"), true),
                Some("A"),
                "A",
                Some(Write::Restore),
            ),
            (
                "key removed",
                owned(None, true),
                Some("A"),
                "A",
                Some(Write::Restore),
            ),
            (
                "labels removed",
                owned(Some("A"), false),
                Some("A"),
                "A",
                Some(Write::Update),
            ),
            (
                "key changed upstream",
                owned(Some("A"), true),
                Some("A"),
                "B",
                Some(Write::Update),
            ),
            (
                "new key, labels off",
                owned(Some("A"), false),
                Some("A"),
                "B",
                Some(Write::Update),
            ),
            (
                "adopting our own leftover",
                owned(Some("A"), true),
                None,
                "B",
                Some(Write::Create),
            ),
            (
                "foreign, overwrite set",
                TargetState::Foreign,
                None,
                "A",
                Some(Write::Adopt),
            ),
        ];
        for (name, target, recorded, current, expected) in cases {
            assert_eq!(write(&target, recorded, current), expected, "{name}");
        }
    }
}
