//! The store's matching rules, on SQLite and (when named) PostgreSQL.

use super::*;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn registration(requester: &str, agency: &str, target: u8, until: i64) -> NewRegistration {
    NewRegistration {
        requester: requester.to_owned(),
        agency: agency.to_owned(),
        pseudonym: [target; 32],
        sealed_contact: format!("sealed contact of {requester}").into_bytes(),
        wrapped_key: format!("wrapped key of {requester}").into_bytes(),
        until,
        nonce: format!("{:016x}", rand::random::<u64>()),
        nonce_expires_at: NOW + 300,
    }
}

fn each_store(test: impl Fn(DeconflictionStore)) {
    let dir = tempfile::tempdir().expect("temp dir");
    for location in fedq_db::testing::locations(dir.path(), "keys.db") {
        test(DeconflictionStore::open(&location).expect("store opens"));
    }
}

#[test]
fn two_agencies_on_one_target_are_both_told_with_the_others_contact() {
    each_store(|store| {
        let limits = Limits::default();
        let (first, alerts) = store
            .register(
                &registration("alice", "police-fr", 7, NOW + DAY),
                NOW,
                &limits,
            )
            .expect("first registers");
        assert_eq!((first.matches, alerts.len()), (0, 0));
        let (second, alerts) = store
            .register(
                &registration("dora", "customs-de", 7, NOW + 2 * DAY),
                NOW + 5,
                &limits,
            )
            .expect("second registers");
        assert_eq!(second.matches, 1);
        assert_eq!(alerts.len(), 2);

        let alice = store.alerts("alice", 0, NOW + 6).expect("alerts");
        assert_eq!(alice.len(), 1);
        assert_eq!(alice[0].registration, first.id);
        assert_eq!(alice[0].wrapped_key, b"wrapped key of alice");
        assert_eq!(alice[0].other_agency, "customs-de");
        assert_eq!(alice[0].other_registration, second.id);
        assert_eq!(alice[0].other_sealed_contact, b"sealed contact of dora");
        let dora = store.alerts("dora", 0, NOW + 6).expect("alerts");
        assert_eq!(dora.len(), 1);
        assert_eq!(dora[0].other_agency, "police-fr");
        assert_eq!(dora[0].other_sealed_contact, b"sealed contact of alice");
        // A follower's cursor: nothing after the last id.
        assert!(store
            .alerts("alice", alice[0].id, NOW + 6)
            .expect("alerts")
            .is_empty());
        assert_eq!(store.list("alice", NOW + 6).expect("list")[0].matches, 1);
    });
}

#[test]
fn nobody_else_is_told_and_an_agency_is_never_matched_against_itself() {
    each_store(|store| {
        let limits = Limits::default();
        store
            .register(
                &registration("alice", "police-fr", 1, NOW + DAY),
                NOW,
                &limits,
            )
            .expect("registers");
        // The same agency again, by another investigator: no match.
        let (again, alerts) = store
            .register(
                &registration("bruno", "police-fr", 1, NOW + DAY),
                NOW,
                &limits,
            )
            .expect("registers");
        assert_eq!((again.matches, alerts.len()), (0, 0));
        // The same investigator twice: refused, naming the first.
        assert!(matches!(
            store.register(&registration("alice", "police-fr", 1, NOW + DAY), NOW, &limits),
            Err(DeconflictionError::Invalid(reason)) if reason.contains("already")
        ));
        // A third agency on another target.
        store
            .register(
                &registration("carol", "police-nl", 2, NOW + DAY),
                NOW,
                &limits,
            )
            .expect("registers");
        for requester in ["alice", "bruno", "carol"] {
            assert!(store.alerts(requester, 0, NOW).expect("alerts").is_empty());
        }
    });
}

#[test]
fn expired_and_cancelled_registrations_are_gone_with_their_alerts() {
    each_store(|store| {
        let limits = Limits::default();
        let (short, _) = store
            .register(
                &registration("alice", "police-fr", 3, NOW + 10),
                NOW,
                &limits,
            )
            .expect("registers");
        store
            .register(
                &registration("dora", "customs-de", 3, NOW + DAY),
                NOW,
                &limits,
            )
            .expect("registers");
        assert_eq!(store.alerts("dora", 0, NOW + 10).expect("alerts").len(), 1);
        // After alice's registration ends, dora's alert about it ends too,
        // and a new registration no longer matches it.
        assert!(store
            .alerts("dora", 0, NOW + 11)
            .expect("alerts")
            .is_empty());
        let (_, alerts) = store
            .register(
                &registration("erik", "police-se", 3, NOW + DAY),
                NOW + 11,
                &limits,
            )
            .expect("registers");
        assert_eq!(alerts.len(), 2, "erik matches dora only");
        assert!(store.list("alice", NOW + 11).expect("list").is_empty());
        assert!(matches!(
            store.cancel("alice", &short.id, NOW + 11),
            Err(DeconflictionError::NotFound(_))
        ));

        let dora = store.list("dora", NOW + 11).expect("list");
        // Only its owner cancels it.
        assert!(matches!(
            store.cancel("erik", &dora[0].id, NOW + 12),
            Err(DeconflictionError::NotFound(_))
        ));
        store
            .cancel("dora", &dora[0].id, NOW + 12)
            .expect("cancels");
        assert!(store
            .alerts("erik", 0, NOW + 12)
            .expect("alerts")
            .is_empty());
        assert_eq!(
            store.rows_naming(&[3; 32]).expect("count"),
            1,
            "erik's only"
        );
    });
}

#[test]
fn a_requester_holds_at_most_the_configured_live_registrations() {
    each_store(|store| {
        let limits = Limits {
            max_live_per_requester: 2,
            ..Limits::default()
        };
        for target in 0..2 {
            store
                .register(
                    &registration("alice", "police-fr", target, NOW + 10),
                    NOW,
                    &limits,
                )
                .expect("registers");
        }
        assert!(matches!(
            store.register(
                &registration("alice", "police-fr", 9, NOW + 10),
                NOW,
                &limits
            ),
            Err(DeconflictionError::TooMany(2))
        ));
        // Once they expire, room again.
        store
            .register(
                &registration("alice", "police-fr", 9, NOW + 30),
                NOW + 11,
                &limits,
            )
            .expect("registers after expiry");
    });
}

#[test]
fn a_replayed_registration_is_refused() {
    each_store(|store| {
        let limits = Limits::default();
        let once = registration("alice", "police-fr", 5, NOW + DAY);
        store.register(&once, NOW, &limits).expect("registers");
        assert!(matches!(
            store.register(&once, NOW + 1, &limits),
            Err(DeconflictionError::Invalid(reason)) if reason.contains("replayed")
        ));
        assert_eq!(store.list("alice", NOW + 1).expect("list").len(), 1);
        // Cancelling does not make the envelope usable again.
        let id = store.list("alice", NOW + 1).expect("list")[0].id.clone();
        store.cancel("alice", &id, NOW + 2).expect("cancels");
        assert!(matches!(
            store.register(&once, NOW + 3, &limits),
            Err(DeconflictionError::Invalid(reason)) if reason.contains("replayed")
        ));
    });
}

#[test]
fn a_requester_removed_from_the_federation_is_matched_no_more() {
    each_store(|store| {
        let limits = Limits::default();
        store
            .register(
                &registration("alice", "police-fr", 6, NOW + DAY),
                NOW,
                &limits,
            )
            .expect("registers");
        store
            .register(
                &registration("dora", "customs-de", 6, NOW + DAY),
                NOW,
                &limits,
            )
            .expect("registers");
        store
            .purge(NOW, |requester| requester != "alice")
            .expect("purges");
        assert!(store.alerts("dora", 0, NOW).expect("alerts").is_empty());
        let (erik, _) = store
            .register(
                &registration("erik", "police-se", 6, NOW + DAY),
                NOW,
                &limits,
            )
            .expect("registers");
        assert_eq!(erik.matches, 1, "dora's only");
    });
}

#[test]
fn limits_default_and_are_validated() {
    assert_eq!(Limits::from_config(None, None), Ok(Limits::default()));
    let problems = Limits::from_config(Some(0), Some(1000)).expect_err("both out of range");
    assert_eq!(problems.len(), 2, "{problems:?}");
}
