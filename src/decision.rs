//! What to do for one credential, decided from what was observed. Pure: no I/O, no clock.
//!
//! The reconciler gathers the observation (the credential, its target Secret, what it last
//! synced, the time), asks [`plan`] whether Terrakio must be asked at all, and after asking
//! asks [`write`] whether the Secret must change. Every rule is a row in the tests below.

use std::time::Duration;

use jiff::Timestamp;

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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The Secret belongs to someone else: leave it alone and say so.
    Conflict,
    /// Ask Terrakio for the current key (generating one only if the account has none), then
    /// see what [`write`] says.
    Sync(SyncReason),
    /// Nothing to do until the next refresh.
    UpToDate { requeue_after: Duration },
}

pub fn plan(seen: &Observation<'_>) -> Plan {
    let reason = match seen.target {
        TargetState::Foreign => return Plan::Conflict,
        _ if seen.recorded_fingerprint.is_none() || seen.last_sync.is_none() => {
            Some(SyncReason::FirstSync)
        }
        _ if seen.generation != seen.observed_generation => Some(SyncReason::SpecChanged),
        _ if !seen.ready => Some(SyncReason::NotReady),
        TargetState::Absent => Some(SyncReason::TargetMissing),
        TargetState::Owned {
            key_fingerprint,
            metadata_current,
        } => {
            if key_fingerprint.as_deref() != seen.recorded_fingerprint || !metadata_current {
                Some(SyncReason::TargetDrifted)
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

    let due = seen.last_sync.map(|last| {
        let elapsed = seen.now.duration_since(last);
        let elapsed = Duration::try_from(elapsed).unwrap_or_default();
        seen.refresh_interval.saturating_sub(elapsed)
    });
    match due {
        Some(remaining) if !remaining.is_zero() => Plan::UpToDate {
            requeue_after: remaining,
        },
        _ => Plan::Sync(SyncReason::RefreshDue),
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
}

/// Whether the Secret must be written to hold the key with fingerprint `current`.
pub fn write(target: &TargetState, recorded: Option<&str>, current: &str) -> Option<Write> {
    match target {
        TargetState::Foreign => None,
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
            ("foreign", TargetState::Foreign, Some("A"), "A", None),
        ];
        for (name, target, recorded, current, expected) in cases {
            assert_eq!(write(&target, recorded, current), expected, "{name}");
        }
    }
}
